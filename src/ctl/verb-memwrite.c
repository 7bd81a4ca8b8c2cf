/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memwrite: bytes into guest memory, inside the memory-write lease. vmsigd
 * writes at most max-write bytes per write (4096 unless configured
 * otherwise), so more data goes as one MemWriteBatch of such chunks, which
 * vmsigd applies all or nothing. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-lease.h"
#include "ctl-util.h"

#define CHUNK_SIZE 4096u       /* vmsigd's default max-write */
#define BATCH_ENTRIES_MAX 4096u /* entries per MemWriteBatch */
#define DATA_MAX ((size_t) CHUNK_SIZE * BATCH_ENTRIES_MAX)

typedef struct write_request {
        const char *name;
        const char *path;
        uint64_t address;
        uint8_t *data;
        size_t len;
} write_request;

static int read_data_file(const char *file, uint8_t **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0, allocated = 0;

        fd = strcmp(file, "-") == 0 ? dup(STDIN_FILENO) : open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return ctl_error(-errno, "Failed to open '%s': %m", file);
        for (;;) {
                ssize_t n;

                /* One byte beyond the limit tells a file that is too big. */
                if (len == allocated) {
                        size_t want = MIN(MAX(allocated * 2, (size_t) 65536), DATA_MAX + 1);
                        uint8_t *grown = realloc(data, want);
                        if (!grown)
                                return ctl_error(-ENOMEM, "Out of memory.");
                        data = grown;
                        allocated = want;
                }
                n = read(fd, data + len, allocated - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return ctl_error(-errno, "Failed to read '%s': %m", file);
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > DATA_MAX)
                        return ctl_error(-EFBIG, "'%s' is larger than one write batch (%zu bytes).", file, DATA_MAX);
        }
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

static int append_batch(sd_bus_message *m, const write_request *q) {
        int r = sd_bus_message_open_container(m, 'a', "(tay)");

        for (size_t off = 0; r >= 0 && off < q->len; off += CHUNK_SIZE) {
                r = sd_bus_message_open_container(m, 'r', "tay");
                if (r >= 0)
                        r = sd_bus_message_append(m, "t", q->address + off);
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', q->data + off, MIN((size_t) CHUNK_SIZE, q->len - off));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        return r < 0 ? r : sd_bus_message_close_container(m);
}

static int build_call(sd_bus *bus, const write_request *q, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bool batch = q->len > CHUNK_SIZE;
        const char *method = batch ? "MemWriteBatch" : arg.virtual_address ? "MemWriteVirtual" : "MemWrite";
        int r;

        r = sd_bus_message_new_method_call(bus, &m, VMSIG_BUS_NAME, q->path, VMSIG_BUS_ENDPOINT_INTERFACE, method);
        if (r >= 0 && batch)
                r = append_batch(m, q);
        else if (r >= 0) {
                r = sd_bus_message_append(m, "t", q->address);
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', q->data, q->len);
        }
        if (r >= 0)
                r = ctl_append_flag_option(m, "pause", arg.pause);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int write_memory(sd_bus *bus, const write_request *q) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(ctl_lease_releasep) ctl_lease *lease = NULL;
        int r;

        r = build_call(bus, q, &m);
        if (r < 0)
                return ctl_error(r, "Failed to build the write: %m");
        r = ctl_lease_acquire(bus, q->name, q->path, "memory-write", &lease);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to write %zu byte%s to '%s' at 0x%" PRIx64, q->len,
                                     q->len == 1 ? "" : "s", q->name, q->address);
        return arg.keep_lease ? ctl_lease_hold(lease, false) : 0;
}

/* The data: HEX from the command line, or --file. */
static int get_data(int argc, char **argv, uint8_t **ret, size_t *ret_len) {
        if (arg.file && argc > 3)
                return ctl_usage_error("Give the data either as HEX or with --file, not both.");
        if (arg.file)
                return read_data_file(arg.file, ret, ret_len);
        if (argc < 4)
                return ctl_usage_error("No data to write: give HEX or --file=FILE.");
        if (ctl_parse_hex(argv[3], ret, ret_len) < 0)
                return ctl_usage_error("Invalid hex data '%s': expected pairs of hex digits.", argv[3]);
        return 0;
}

static int check_size(const write_request *q) {
        if (arg.virtual_address && q->len > CHUNK_SIZE)
                return ctl_error(-EFBIG, "A virtual write takes at most %u bytes (one MemWriteVirtual call); "
                                         "this is %zu.", CHUNK_SIZE, q->len);
        if (q->len > DATA_MAX)
                return ctl_error(-EFBIG, "At most %zu bytes fit in one write batch; this is %zu.", DATA_MAX, q->len);
        if (q->len > 0 && q->address + (q->len - 1) < q->address)
                return ctl_error(-ERANGE, "%zu bytes at 0x%" PRIx64 " wrap around the address space.", q->len,
                                 q->address);
        return 0;
}

int verb_memwrite(int argc, char **argv) {
        _cleanup_free_ char *path = NULL;
        write_request q = { .name = argv[1] };
        sd_bus *bus;
        int r;

        if (ctl_parse_u64(argv[2], &q.address) < 0)
                return ctl_usage_error("Invalid address '%s'.", argv[2]);
        r = get_data(argc, argv, &q.data, &q.len);
        if (r >= 0)
                r = check_size(&q);
        if (r >= 0)
                r = ctl_open_endpoint(q.name, false, &bus, &path);
        if (r >= 0) {
                q.path = path;
                r = write_memory(bus, &q);
        }
        free(q.data);
        return r;
}
