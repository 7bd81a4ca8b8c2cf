/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigctl: inspect and steer the VMs that vmsigd serves, in the manner of
 * machinectl. Options and the verb table live here; each verb in its
 * verb-*.c file. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-agent.h"
#include "ctl-pager.h"
#include "ctl-util.h"

ctl_args arg = {
        .legend = true,
        .pager = true,
};

static void help_commands(void) {
        printf("vmsigctl [OPTIONS...] COMMAND ...\n\n"
               "Inspect and control the virtual machines served by vmsigd.\n\n"
               "Endpoint Commands:\n"
               "  list                         List endpoints (the default)\n"
               "  status NAME...               Show everything about endpoints\n"
               "  pause NAME                   Pause the guest (inside the power lease)\n"
               "  resume NAME                  Resume a paused guest\n"
               "  reset NAME                   Reset the guest\n"
               "  poweroff NAME                Press the power button: the guest shuts down\n"
               "  kill NAME                    End the VM at once, without asking the guest\n"
               "  lease NAME CLASS             Hold the input, power or memory-write lease\n"
               "                               until Ctrl-C, printing its object path\n"
               "  memwrite NAME ADDR [HEX]     Write bytes into guest memory at ADDR (a\n"
               "                               guest-physical address unless --virtual)\n"
               "  input NAME key KEY...        Press and release keys: QEMU key names (a, 1,\n"
               "                               ret, spc, esc, f1, ...) or combinations\n"
               "                               (ctrl+alt+delete)\n"
               "  input NAME type TEXT         Type text on a US keyboard\n"
               "  input NAME move DX DY        Move the pointer by DX, DY\n"
               "  input NAME abs X Y           Move the pointer to X, Y (0..32767)\n"
               "  input NAME click [BUTTON]    Click a button (left, middle, right, ...)\n"
               "  monitor [NAME]               Follow roster, state, memctx, bootstrap and\n"
               "                               lease events until Ctrl-C\n"
               "  dump-memctx NAME             Show the memory context: epoch, DTB, ranges\n"
#ifdef VMSIG_HAVE_VGPU
               "  screenshot NAME FILE.png|-   Save the current frame of the screen as PNG\n"
#endif
               "  reload                       Read vmsigd's configuration again\n"
               "  detach NAME                  Detach an endpoint now\n");
}

static void help(void) {
        help_commands();
        printf("\nOptions:\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "  -H --host=[USER@]HOST        Operate on a remote host (over ssh; leases and\n"
               "                               memory contexts need a local connection)\n"
               "     --address=ADDRESS         Connect to the message bus at ADDRESS, or to\n"
               "                               vmsigd's private socket (root only)\n"
               "     --no-ask-password         Do not ask for a password to authorize\n"
               "     --no-pager                Do not pipe output into a pager\n"
               "  -q --quiet                   Suppress informational messages\n"
               "     --json=pretty|short|off   Output JSON (list, status, dump-memctx,\n"
               "                               screenshot; monitor: one object per event);\n"
               "                               --json alone is short\n"
               "  -j                           Same as --json=pretty on a terminal,\n"
               "                               --json=short otherwise\n"
               "     --no-legend               Do not print the table header and footer\n"
               "     --keep-lease              pause, resume, reset, poweroff, kill, memwrite,\n"
               "                               input: hold the lease afterwards, until Ctrl-C\n"
               "     --force                   Take a lease from its holder (administrators)\n"
               "     --file=FILE               memwrite: write the contents of FILE (- for\n"
               "                               standard input)\n"
               "     --virtual                 memwrite: ADDR is guest-virtual, translated\n"
               "                               through the guest's page tables\n"
               "     --pause                   memwrite: pause the guest around the write\n"
               "     --memctx                  monitor: subscribe to the memory context, for\n"
               "                               MemctxChanged and MemctxInvalidated\n"
               "     --save=FILE               dump-memctx: save guest RAM to FILE\n"
               "     --range=GPA:SIZE          dump-memctx --save: save only this range (may\n"
               "                               be repeated; SIZE may end in K, M or G)\n\n"
               "Negative numbers go after --, as in: vmsigctl input NAME move -- -10 5\n"
               "Exit status: 0 on success, 1 on failure, 2 for a bad command line.\n");
}

enum {
        ARG_VERSION = 0x100,
        ARG_ADDRESS,
        ARG_NO_ASK_PASSWORD,
        ARG_NO_PAGER,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_KEEP_LEASE,
        ARG_FORCE,
        ARG_FILE,
        ARG_VIRTUAL,
        ARG_PAUSE,
        ARG_MEMCTX,
        ARG_SAVE,
        ARG_RANGE,
};

static int add_range(const char *s) {
        ctl_range range, *grown;

        if (ctl_parse_range(s, &range) < 0)
                return ctl_usage_error("Invalid range '%s': expected GPA:SIZE, such as 0x1000:4K.", s);
        grown = reallocarray(arg.ranges, arg.n_ranges + 1, sizeof *grown);
        if (!grown)
                return ctl_error(-ENOMEM, "Out of memory.");
        arg.ranges = grown;
        arg.ranges[arg.n_ranges++] = range;
        return 0;
}

/* An option getopt did not know. "-5" is most likely a negative number. */
static int unknown_option(void) {
        if (isdigit(optopt))
                return ctl_usage_error("Negative numbers go after --, as in: vmsigctl input NAME move -- -10 5");
        fputs("See 'vmsigctl --help'.\n", stderr);
        return CTL_USAGE;
}

/* The options that only set a flag or keep their argument: true if c was
 * one of them. */
static bool set_option(int c) {
        static const struct {
                int c;
                bool *flag;
                bool value;
        } flags[] = {
                { ARG_NO_ASK_PASSWORD, &arg.ask_password, false },
                { ARG_NO_PAGER, &arg.pager, false },
                { 'q', &arg.quiet, true },
                { ARG_NO_LEGEND, &arg.legend, false },
                { ARG_KEEP_LEASE, &arg.keep_lease, true },
                { ARG_FORCE, &arg.force, true },
                { ARG_VIRTUAL, &arg.virtual_address, true },
                { ARG_PAUSE, &arg.pause, true },
                { ARG_MEMCTX, &arg.memctx, true },
        };
        static const struct {
                int c;
                const char **value;
        } strings[] = {
                { 'H', &arg.host },
                { ARG_ADDRESS, &arg.address },
                { ARG_FILE, &arg.file },
                { ARG_SAVE, &arg.save },
        };

        for (size_t i = 0; i < ELEMENTSOF(flags); i++)
                if (flags[i].c == c) {
                        *flags[i].flag = flags[i].value;
                        return true;
                }
        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (strings[i].c == c) {
                        *strings[i].value = optarg;
                        return true;
                }
        return false;
}

/* --json=MODE; a bare --json is short, as before there were modes. */
static int parse_json(const char *s) {
        if (!s || strcmp(s, "short") == 0)
                arg.json = CTL_JSON_SHORT;
        else if (strcmp(s, "pretty") == 0)
                arg.json = CTL_JSON_PRETTY;
        else if (strcmp(s, "off") == 0)
                arg.json = CTL_JSON_OFF;
        else
                return ctl_usage_error("Invalid --json= mode '%s': expected pretty, short or off.", s);
        return 0;
}

/* -j: for a human, indented; for a program, one line (systemctl's rule). */
static void set_json_auto(void) {
        arg.json = isatty(STDOUT_FILENO) ? CTL_JSON_PRETTY : CTL_JSON_SHORT;
}

/* Help is long, and paged as systemctl pages its own. */
static void show_help(void) {
        ctl_pager_open();
        help();
}

/* Returns 1 to go on, 0 when done (--help, --version), or CTL_USAGE. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "host", required_argument, NULL, 'H' },
                { "address", required_argument, NULL, ARG_ADDRESS },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "quiet", no_argument, NULL, 'q' },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "keep-lease", no_argument, NULL, ARG_KEEP_LEASE },
                { "force", no_argument, NULL, ARG_FORCE },
                { "file", required_argument, NULL, ARG_FILE },
                { "virtual", no_argument, NULL, ARG_VIRTUAL },
                { "pause", no_argument, NULL, ARG_PAUSE },
                { "memctx", no_argument, NULL, ARG_MEMCTX },
                { "save", required_argument, NULL, ARG_SAVE },
                { "range", required_argument, NULL, ARG_RANGE },
                {},
        };
        bool want_help = false;
        int c, r = 0;

        while ((c = getopt_long(argc, argv, "hH:jq", options, NULL)) >= 0) {
                if (set_option(c))
                        continue;
                switch (c) {
                case 'h':
                        /* After every option: --help --no-pager is heard. */
                        want_help = true;
                        break;
                case ARG_VERSION:
                        printf("vmsigctl " PACKAGE_VERSION "\n");
                        return 0;
                case ARG_JSON:
                        r = parse_json(optarg);
                        break;
                case 'j':
                        set_json_auto();
                        break;
                case ARG_RANGE:
                        r = add_range(optarg);
                        break;
                default:
                        return unknown_option();
                }
                if (r < 0)
                        return r;
        }
        if (want_help) {
                show_help();
                return 0;
        }
        if (arg.host && arg.address)
                return ctl_usage_error("--host and --address do not go together.");
        if (arg.n_ranges > 0 && !arg.save)
                return ctl_usage_error("--range only says what --save saves.");
        return 1;
}

static const struct verb {
        const char *name;
        int min_args, max_args; /* the verb included */
        ctl_verb_fn fn;
} verbs[] = {
        { "list", 1, 1, verb_list },
        { "status", 2, INT_MAX, verb_status },
        { "pause", 2, 2, verb_lifecycle },
        { "resume", 2, 2, verb_lifecycle },
        { "reset", 2, 2, verb_lifecycle },
        { "poweroff", 2, 2, verb_lifecycle },
        { "kill", 2, 2, verb_lifecycle },
        { "lease", 3, 3, verb_lease },
        { "memwrite", 3, 4, verb_memwrite },
        { "input", 3, INT_MAX, verb_input },
        { "monitor", 1, 2, verb_monitor },
        { "dump-memctx", 2, 2, verb_dump_memctx },
        { "reload", 1, 1, verb_reload },
        { "detach", 2, 2, verb_detach },
#ifdef VMSIG_HAVE_VGPU
        { "screenshot", 3, 3, verb_screenshot },
#endif
};

static const struct verb *find_verb(int argc, char **argv) {
        const char *name = argc > 0 ? argv[0] : "list";

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

/* vmsigd gives polkit 5 minutes to get an answer from the human; a little
 * more here, so that its answer (or its time-out) is what we report. */
#define INTERACTIVE_CALL_TIMEOUT_USEC ((5 * 60 + 10) * UINT64_C(1000000))

static sd_bus *bus;
static pid_t agent;

static int open_address(const char *address, bool bus_client, sd_bus **ret) {
        sd_bus *b = NULL;
        const char *unique;
        int r;

        r = sd_bus_new(&b);
        if (r >= 0)
                r = sd_bus_set_address(b, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(b, bus_client);
        if (r >= 0)
                r = sd_bus_start(b);
        /* Waits for the answer to Hello, which a peer that is no bus refuses. */
        if (r >= 0 && bus_client)
                r = sd_bus_get_unique_name(b, &unique);
        if (r < 0) {
                sd_bus_flush_close_unref(b);
                return r;
        }
        *ret = b;
        return 0;
}

/* --address: a message bus of our choosing, where we say Hello as
 * sd_bus_open_system() would; or else vmsigd's private socket, where the
 * same objects are served peer-to-peer and Hello is not understood. */
static int connect_address(void) {
        int r = open_address(arg.address, true, &bus);

        if (r < 0 && open_address(arg.address, false, &bus) >= 0)
                return 0;
        return r;
}

/* Root, with no bus named (no --address, no -H, no $DBUS_SYSTEM_BUS_ADDRESS),
 * talks to vmsigd's private socket, as systemctl does to
 * /run/systemd/private: its controls then do not wait in dbus-daemon
 * behind other clients' traffic (bench/RESULTS.md, "Floods": a flood of
 * 16 MiB calls on the bus costs root's calls 20 ms and more at the p99,
 * 2-5 ms here). Where there is no such socket (vmsigd not running yet and
 * to be D-Bus activated, or configured elsewhere), the system bus.
 * $VMSIG_PRIVATE_SOCKET names another socket. */
static bool want_private_socket(void) {
        return geteuid() == 0 && !arg.address && !arg.host && !getenv("DBUS_SYSTEM_BUS_ADDRESS");
}

static int connect_private(void) {
        _cleanup_free_ char *address = NULL;
        const char *path = getenv("VMSIG_PRIVATE_SOCKET") ?: VMSIG_PRIVATE_SOCKET_DEFAULT;

        if (access(path, F_OK) < 0)
                return -errno;
        if (asprintf(&address, "unix:path=%s", path) < 0)
                return -ENOMEM;
        return open_address(address, false, &bus);
}

static int connect_bus(void) {
        int r;

        if (arg.address)
                r = connect_address();
        else if (arg.host)
                r = sd_bus_open_system_remote(&bus, arg.host);
        else if (want_private_socket() && connect_private() >= 0)
                r = 0;
        else
                r = sd_bus_open_system(&bus);
        if (r < 0) {
                bus = sd_bus_unref(bus);
                return ctl_error(r, "Failed to connect to %s: %m",
                                 arg.address ? arg.address : arg.host ? arg.host : "the system bus");
        }
        /* Lets polkit ask for a password (through the agent) instead of
         * vmsigd refusing with InteractiveAuthorizationRequired. */
        (void) sd_bus_set_allow_interactive_authorization(bus, arg.ask_password);
        return 0;
}

int ctl_acquire_bus(bool interactive, sd_bus **ret) {
        int r;

        if (!bus) {
                r = connect_bus();
                if (r < 0)
                        return r;
        }
        if (interactive && agent == 0)
                agent = ctl_polkit_agent_open();
        /* A call that may wait for a human typing a password waits as long
         * as vmsigd waits for polkit (5 minutes), not sd-bus's 25 s. */
        if (interactive && agent > 0)
                (void) sd_bus_set_method_call_timeout(bus, INTERACTIVE_CALL_TIMEOUT_USEC);
        *ret = bus;
        return 0;
}

static int run_verb(int argc, char **argv) {
        const struct verb *v = find_verb(argc, argv);
        char *default_argv[] = { (char *) "list", NULL };

        if (!v)
                return ctl_usage_error("Unknown command '%s'.", argv[0]);
        if (argc == 0) {
                argc = 1;
                argv = default_argv;
        }
        if (argc < v->min_args)
                return ctl_usage_error("Too few arguments for '%s'.", v->name);
        if (argc > v->max_args)
                return ctl_usage_error("Too many arguments for '%s'.", v->name);
        return v->fn(argc, argv);
}

int main(int argc, char *argv[]) {
        int r;

        /* An interactive terminal is what lets polkit ask; scripts and
         * pipes get an answer, not a prompt. */
        arg.ask_password = isatty(STDIN_FILENO);
        r = parse_argv(argc, argv);
        if (r > 0)
                r = run_verb(argc - optind, argv + optind);
        ctl_polkit_agent_close(agent);
        sd_bus_flush_close_unref(bus);
        free(arg.ranges);
        /* Last: the human may read on for a while, holding nothing of
         * vmsigd's. */
        ctl_pager_close();
        if (r == CTL_USAGE)
                return EXIT_USAGE;
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
