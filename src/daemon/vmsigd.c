/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <libxml/parser.h>

#include "config-file.h"
#include "daemon.h"
#include "log.h"

static int check_config(const char *path) {
        _cleanup_free_ char *error = NULL;
        vmsig_config *c = NULL;
        int r;

        r = vmsig_config_load(path, &c, &error);
        if (r < 0) {
                fprintf(stderr, "%s\n", error ? error : "Cannot load the configuration.");
                return EXIT_FAILURE;
        }
        if (c->warning)
                fprintf(stderr, "warning: %s\n", c->warning);
        printf("%s: configuration is valid (%zu stub VM%s).\n", path, c->n_stub_vms, c->n_stub_vms == 1 ? "" : "s");
        vmsig_config_free(c);
        return EXIT_SUCCESS;
}

/* Every endpoint holds a few fds and nothing here uses select(), so take
 * the whole hard limit rather than the traditional 1024 soft one. */
static void bump_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(errno, "Cannot raise the fd limit: %m");
}

static void help(void) {
        printf("vmsigd [OPTIONS...]\n\n"
               "The vmsig transfer-event bus daemon (org.vmsig on the system bus).\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "  -c --config=FILE          Read the configuration from FILE\n"
               "                            (default: " VMSIG_CONFIG_FILE ")\n"
               "     --check-config=FILE    Validate FILE and exit\n"
               "     --log-level=LEVEL      Override the configured log level\n"
               "     --private-socket=PATH  Serve the private socket at PATH instead of the\n"
               "                            configured one; an empty PATH disables it\n");
}

enum { ARG_VERSION = 0x100, ARG_CHECK_CONFIG, ARG_LOG_LEVEL, ARG_PRIVATE_SOCKET };

static int run(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, 'c' },
                { "check-config", required_argument, NULL, ARG_CHECK_CONFIG },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "private-socket", required_argument, NULL, ARG_PRIVATE_SOCKET },
                {},
        };
        vmsig_daemon_options opts = { .config_path = VMSIG_CONFIG_FILE, .log_level = -1 };
        vmsig_daemon *d = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "hc:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("vmsigd " PACKAGE_VERSION "\n");
                        return EXIT_SUCCESS;
                case 'c':
                        opts.config_path = optarg;
                        opts.config_explicit = true;
                        break;
                case ARG_CHECK_CONFIG:
                        return check_config(optarg);
                case ARG_LOG_LEVEL:
                        opts.log_level = log_level_from_string(optarg);
                        if (opts.log_level < 0) {
                                log_error("Invalid log level '%s'.", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case ARG_PRIVATE_SOCKET:
                        if (*optarg && (optarg[0] != '/' || strlen(optarg) >= 108)) {
                                log_error("Invalid private socket path '%s': must be absolute, below 108 bytes.",
                                          optarg);
                                return EXIT_FAILURE;
                        }
                        opts.private_socket = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'.", argv[optind]);
                return EXIT_FAILURE;
        }

        bump_fd_limit();
        r = vmsig_daemon_new(&opts, &d);
        if (r < 0)
                return EXIT_FAILURE;
        r = vmsig_daemon_run(d);
        vmsig_daemon_free(d);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        int r;

        /* libvirt's client writes to its sockets without MSG_NOSIGNAL: a
         * libvirtd that dies under a connection must not end vmsigd. */
        (void) signal(SIGPIPE, SIG_IGN);
        r = run(argc, argv);
        xmlCleanupParser();
        return r;
}
