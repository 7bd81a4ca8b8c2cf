/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libvirt host backend (src/host/libvirt) against the private libvirtd
 * of libvirt-harness.h, through the core: domains started through the API
 * (as virsh starts them) become endpoints; libvirt's own suspend, resume
 * and destroy show in State, and vmsig's lifecycle calls in libvirt's
 * view; a reset is one lifecycle reset; keys and screenshots; libvirtd
 * killed and restarted keeps the endpoints (vmid, generation, lease) of the
 * domains that still run and detaches one that died meanwhile; libvirtd
 * absent at start is one warning, then the domains attach when it comes;
 * the tagged mode attaches tagged domains only; a domain listed while
 * libvirt starts it becomes an endpoint (with memctx) once it started;
 * libvirtd gives each domain's XML once, whether listed or started.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <libvirt/libvirt.h>

#include "event-loop.h"
#include "libvirt-backend.h"
#include "libvirt-event.h"
#include "libvirt-harness.h"
#include "log-capture.h"
#include "memctx.h"
#include "vmsig-endpoint.h"
#include "vt-util.h"

#define RAM_MIB 128
#define WAIT_USEC (60 * G_USEC_PER_SEC) /* TCG on a loaded machine */
#define BOOT_TIMEOUT_MS 90000
#define QKEY_A 36

/* One loop for the program: libvirt's event implementation is
 * process-global (libvirt-event.h). */
static sd_event *loop;

typedef struct Fixture {
        sd_event *event;
        vmsig_core *core;
        LibvirtHarness *h;
        vmsig_libvirt *lv;
        vmsig_subscriber *sub;
        int resets, kills, removed;
} Fixture;

static int on_event(vmsig_subscriber *s, const vmsig_delivery *d, void *userdata) {
        Fixture *f = userdata;
        const vmsig_event *e = d->event;

        if (d->replay)
                return VMSIG_DELIVER_OK;
        if (e->kind == VMSIG_KIND_LIFECYCLE) {
                const vmsig_lifecycle_payload *p = e->payload;

                f->resets += p->op == VMSIG_OP_RESET;
                f->kills += p->op == VMSIG_OP_KILL;
        } else if (e->kind == VMSIG_KIND_ROSTER)
                f->removed += ((const vmsig_roster_payload *) e->payload)->change == VMSIG_ROSTER_REMOVED;
        return VMSIG_DELIVER_OK;
}

/* The loop, the core, a subscriber, and a libvirtd (started or not). */
static bool setup(Fixture *f, bool start_libvirtd) {
        vmsig_filter filter = { .kinds = VMSIG_KIND_MASK(VMSIG_KIND_LIFECYCLE) | VMSIG_KIND_MASK(VMSIG_KIND_ROSTER) };

        *f = (Fixture) {};
        if (!libvirt_harness_available())
                return false;
        f->h = libvirt_harness_new();
        if (start_libvirtd)
                libvirt_harness_start(f->h);
        f->event = sd_event_ref(loop);
        g_assert_cmpint(vmsig_core_new(f->event, &f->core), ==, 0);
        g_assert_cmpint(vmsig_core_subscribe(f->core, &filter, 1024, on_event, f, &f->sub), ==, 0);
        return true;
}

static void start_backend_monitor(Fixture *f, vmsig_libvirt_domains which, bool monitor) {
        vmsig_libvirt_config config = { .domains = which, .monitor = monitor };

        g_assert_cmpint(vmsig_libvirt_new(f->core, &config, &f->lv), ==, 0);
}

static void start_backend(Fixture *f, vmsig_libvirt_domains which) {
        start_backend_monitor(f, which, true);
}

static void teardown(Fixture *f) {
        f->lv = vmsig_libvirt_free(f->lv);
        vmsig_subscriber_free(f->sub);
        vt_core_stop(f->event, f->core);
        libvirt_harness_free(f->h);
}

#define RUN_UNTIL(f, cond) VT_EVENT_RUN_UNTIL((f)->event, cond, WAIT_USEC)

static vmsig_endpoint *wait_endpoint(Fixture *f, const char *name) {
        RUN_UNTIL(f, vmsig_core_find_endpoint_by_name(f->core, name));
        return vmsig_core_find_endpoint_by_name(f->core, name);
}

/* What most tests begin with: a running domain called name (RAM_MIB of
 * RAM), then the backend (every domain; monitor, or not), until it is
 * connected and the domain is its endpoint. */
static vmsig_endpoint *start_with_domain(Fixture *f, const char *name, LibvirtRam ram, bool monitor) {
        virDomainFree(libvirt_harness_start_domain(f->h, name, ram, RAM_MIB));
        start_backend_monitor(f, VMSIG_LIBVIRT_DOMAINS_ALL, monitor);
        RUN_UNTIL(f, vmsig_libvirt_is_connected(f->lv));
        return wait_endpoint(f, name);
}

static int domain_state(Fixture *f, const char *name) {
        virDomainPtr dom = virDomainLookupByName(f->h->conn, name);
        int state = -1, reason;

        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainGetState(dom, &state, &reason, 0), ==, 0);
        virDomainFree(dom);
        return state;
}

typedef struct Done {
        bool done;
        int error;
        char message[256];
        size_t image_size;
        char magic[2];
} Done;

static void on_done(const vmsig_result *r, void *userdata) {
        Done *d = userdata;

        d->done = true;
        d->error = r->error;
        g_strlcpy(d->message, r->message ?: "", sizeof d->message);
}

static void lifecycle_answer(Fixture *f, vmsig_endpoint *ep, vmsig_lifecycle_op op, Done *d) {
        *d = (Done) {};
        g_assert_cmpint(vmsig_endpoint_lifecycle(ep, op, on_done, d), ==, 0);
        /* Never from inside the call. */
        g_assert_false(d->done);
        RUN_UNTIL(f, d->done);
}

static void lifecycle(Fixture *f, vmsig_endpoint *ep, vmsig_lifecycle_op op) {
        Done d;

        lifecycle_answer(f, ep, op, &d);
        if (d.error != 0)
                g_error("%s: %s", vmsig_lifecycle_op_to_string(op), d.message);
}

static void assert_is_domain(Fixture *f, vmsig_endpoint *ep, const char *name) {
        virDomainPtr dom = virDomainLookupByName(f->h->conn, name);
        sd_id128_t uuid;

        g_assert_nonnull(dom);
        g_assert_cmpint(virDomainGetUUID(dom, uuid.bytes), ==, 0);
        g_assert_true(sd_id128_equal(vmsig_endpoint_get_uuid(ep), uuid));
        g_assert_cmpstr(vmsig_endpoint_get_backend(ep), ==, "libvirt");
        /* Shared RAM: memctx (test-bus-libvirt covers the datum). */
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_MEMCTX));
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_INPUT));
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_DISPLAY));
        virDomainFree(dom);
}

/* libvirt's own calls, as virsh makes them, and what State shows. */
static void libvirt_direct(Fixture *f, vmsig_endpoint *ep, const char *name) {
        virDomainPtr dom = virDomainLookupByName(f->h->conn, name);

        g_assert_cmpint(virDomainSuspend(dom), ==, 0);
        RUN_UNTIL(f, vmsig_endpoint_get_state(ep) == VMSIG_STATE_PAUSED);
        g_assert_cmpint(virDomainResume(dom), ==, 0);
        RUN_UNTIL(f, vmsig_endpoint_get_state(ep) == VMSIG_STATE_RUNNING);
        virDomainFree(dom);
}

/* vmsig's calls, in libvirt's view; libvirt's refusal, in its words. */
static void vmsig_calls(Fixture *f, vmsig_endpoint *one) {
        Done d;

        lifecycle(f, one, VMSIG_OP_PAUSE);
        g_assert_cmpint(domain_state(f, "lv-one"), ==, VIR_DOMAIN_PAUSED);
        RUN_UNTIL(f, vmsig_endpoint_get_state(one) == VMSIG_STATE_PAUSED);
        lifecycle(f, one, VMSIG_OP_RESUME);
        g_assert_cmpint(domain_state(f, "lv-one"), ==, VIR_DOMAIN_RUNNING);
        RUN_UNTIL(f, vmsig_endpoint_get_state(one) == VMSIG_STATE_RUNNING);
        lifecycle_answer(f, one, VMSIG_OP_RESUME, &d);
        g_assert_cmpint(d.error, ==, -EIO);
        g_assert_true(g_str_has_prefix(d.message, "libvirt: "));
        g_test_message("Resume of a running domain: %s", d.message);
}

static int reboots; /* REBOOT events on the test's own connection */

static void on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque) {
        reboots++;
}

static void test_lifecycle(void) {
        Fixture f;
        vmsig_endpoint *one, *two;
        virDomainPtr dom;

        if (!setup(&f, true))
                return;
        g_assert_cmpint(virConnectDomainEventRegisterAny(f.h->conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
                                                         VIR_DOMAIN_EVENT_CALLBACK(on_reboot), NULL, NULL), >=, 0);
        one = start_with_domain(&f, "lv-one", LIBVIRT_RAM_FILE, true);
        assert_is_domain(&f, one, "lv-one");
        g_assert_cmpint(vmsig_endpoint_get_state(one), ==, VMSIG_STATE_RUNNING);

        /* Started after: libvirt's event. */
        dom = libvirt_harness_start_domain(f.h, "lv-two", LIBVIRT_RAM_MEMFD, RAM_MIB);
        two = wait_endpoint(&f, "lv-two");
        assert_is_domain(&f, two, "lv-two");
        libvirt_direct(&f, two, "lv-two");

        vmsig_calls(&f, one);

        /* One REBOOT event of libvirt's, one lifecycle reset: counted
         * against the REBOOT events of the test's own connection (the
         * guest may reboot by itself too: panic=-1). A pause and resume
         * after it come through the backend's event stream, so its events
         * of the reset are in. */
        libvirt_harness_wait_guest(f.h, "lv-one", BOOT_TIMEOUT_MS);
        lifecycle(&f, one, VMSIG_OP_RESET);
        RUN_UNTIL(&f, f.resets >= 1 && reboots >= 1);
        lifecycle(&f, one, VMSIG_OP_PAUSE);
        RUN_UNTIL(&f, vmsig_endpoint_get_state(one) == VMSIG_STATE_PAUSED);
        lifecycle(&f, one, VMSIG_OP_RESUME);
        RUN_UNTIL(&f, vmsig_endpoint_get_state(one) == VMSIG_STATE_RUNNING);
        RUN_UNTIL(&f, reboots == f.resets);
        g_test_message("resets: %d (libvirt's REBOOT events: %d)", f.resets, reboots);

        /* Destroyed behind vmsig's back: killed, then gone. */
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
        RUN_UNTIL(&f, f.removed == 1);
        g_assert_null(vmsig_core_find_endpoint_by_name(f.core, "lv-two"));
        g_assert_cmpint(f.kills, ==, 1);
        /* And by vmsig. */
        lifecycle(&f, one, VMSIG_OP_KILL);
        g_assert_cmpint(domain_state(&f, "lv-one"), ==, VIR_DOMAIN_SHUTOFF);
        RUN_UNTIL(&f, f.removed == 2);
        g_assert_null(vmsig_core_find_endpoint_by_name(f.core, "lv-one"));
        g_assert_cmpint(f.kills, ==, 2);
        teardown(&f);
}

static void on_image(const vmsig_result *r, const vmsig_display_image *image, void *userdata) {
        Done *d = userdata;

        on_done(r, userdata);
        if (!image)
                return;
        g_assert_true(image->encoding == VMSIG_IMAGE_PNG || image->encoding == VMSIG_IMAGE_PPM);
        d->image_size = image->size;
        g_assert_cmpint(pread(image->fd, d->magic, sizeof d->magic, 0), ==, (ssize_t) sizeof d->magic);
}

static void inject(Fixture *f, vmsig_endpoint *ep, const vmsig_input_event *ev, size_t n, Done *d) {
        *d = (Done) {};
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, ev, n, on_done, d), ==, 0);
        g_assert_false(d->done);
        RUN_UNTIL(f, d->done);
}

/* Keys through virDomainSendKey (shift held over a, as one call), a bad
 * key refused before anything is sent, pointer events through the monitor
 * passthrough; a screenshot, and a second one while it runs refused. */
static void test_input_frames(void) {
        const vmsig_input_event keys[] = {
                { VMSIG_INPUT_KEY, 1 /* shift */, 1 }, { VMSIG_INPUT_KEY, QKEY_A, 1 },
                { VMSIG_INPUT_KEY, QKEY_A, 0 },        { VMSIG_INPUT_KEY, 1, 0 },
        };
        const vmsig_input_event bad[] = { { VMSIG_INPUT_KEY, QKEY_A, 1 }, { VMSIG_INPUT_KEY, 0, 1 } };
        const vmsig_input_event pointer[] = { { VMSIG_INPUT_REL, 0, 5 } };
        Fixture f;
        vmsig_endpoint *ep;
        Done d;

        if (!setup(&f, true))
                return;
        ep = start_with_domain(&f, "lv-input", LIBVIRT_RAM_FILE, true);

        inject(&f, ep, keys, G_N_ELEMENTS(keys), &d);
        g_assert_cmpint(d.error, ==, 0);
        g_assert_cmpint(vmsig_endpoint_inject_input(ep, bad, G_N_ELEMENTS(bad), on_done, &d), ==, -EINVAL);
        /* Through the monitor passthrough (monitor="no" refuses it:
         * test-bus-libvirt). */
        inject(&f, ep, pointer, G_N_ELEMENTS(pointer), &d);
        if (d.error != 0)
                g_error("pointer: %s", d.message);

        d = (Done) {};
        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &d), ==, 0);
        g_assert_cmpint(vmsig_endpoint_capture_display(ep, on_image, &d), ==, -EBUSY);
        RUN_UNTIL(&f, d.done);
        if (d.error != 0)
                g_error("screenshot: %s", d.message);
        g_assert_cmpuint(d.image_size, >, 0);
        g_assert_true(memcmp(d.magic, "\x89P", 2) == 0 || memcmp(d.magic, "P6", 2) == 0);
        teardown(&f);
}

static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;

        for (const char *p = haystack; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

#define QUEUED 16

/* Pointer calls queued behind a libvirt call that cannot finish
 * (libvirtd stopped) when the input lease ends: no more than the one the
 * worker had begun reaches QEMU, the others fail as dropped, and the
 * button the lease's holder left down goes up, after whatever reached
 * QEMU. QEMU's trace of its input events (its log) shows what arrived. */
static void test_input_withdrawn(void) {
        const vmsig_input_event press[] = { { VMSIG_INPUT_BUTTON, 0 /* left */, 1 }, { VMSIG_INPUT_REL, 1, 3 } };
        const vmsig_input_event move[] = { { VMSIG_INPUT_REL, 0, 7 } };
        const vmsig_input_event after[] = { { VMSIG_INPUT_REL, 1, 9 } };
        const vmsig_lease_holder holder = { .name = ":1.42", .uid = 0 };
        g_autofree char *log = NULL;
        vmsig_lease_info lease;
        Done queued[QUEUED], d;
        size_t sent = 0;
        vmsig_endpoint *ep;
        const char *up;
        Fixture f;

        if (!setup(&f, true))
                return;
        ep = start_with_domain(&f, "lv-ptr", LIBVIRT_RAM_FILE, true);
        free(libvirt_harness_hmp(f.h, "lv-ptr", "trace-event input_event_* on"));
        g_assert_cmpint(vmsig_endpoint_lease_acquire(ep, VMSIG_LEASE_INPUT, &holder, &lease, NULL), ==, 0);
        inject(&f, ep, press, G_N_ELEMENTS(press), &d);
        g_assert_cmpint(d.error, ==, 0);

        g_assert_cmpint(kill(f.h->pid, SIGSTOP), ==, 0);
        for (size_t i = 0; i < QUEUED; i++) {
                queued[i] = (Done) {};
                g_assert_cmpint(vmsig_endpoint_inject_input(ep, move, G_N_ELEMENTS(move), on_done, &queued[i]), ==, 0);
        }
        g_assert_cmpint(vmsig_endpoint_lease_end(ep, VMSIG_LEASE_INPUT, lease.id, VMSIG_LEASE_RELEASED, NULL), ==, 0);
        g_assert_cmpint(kill(f.h->pid, SIGCONT), ==, 0);
        for (size_t i = 0; i < QUEUED; i++) {
                RUN_UNTIL(&f, queued[i].done);
                if (queued[i].error == 0) {
                        sent++;
                        continue;
                }
                g_assert_cmpint(queued[i].error, ==, -ECANCELED);
                g_assert_nonnull(strstr(queued[i].message, "the input lease was released"));
        }
        g_assert_cmpuint(sent, <=, 1);

        /* Behind the release on the worker: once answered, all of it is in
         * QEMU's log. */
        g_assert_cmpint(vmsig_endpoint_lease_acquire(ep, VMSIG_LEASE_INPUT, &holder, &lease, NULL), ==, 0);
        inject(&f, ep, after, G_N_ELEMENTS(after), &d);
        g_assert_cmpint(d.error, ==, 0);
        log = libvirt_harness_qemu_log(f.h, "lv-ptr");
        g_assert_cmpuint(count(log, "axis x, value 7\n"), ==, sent);
        g_assert_cmpuint(count(log, "button left, down 1\n"), ==, 1);
        g_assert_cmpuint(count(log, "button left, down 0\n"), ==, 1);
        up = strstr(log, "button left, down 0\n");
        g_assert_null(strstr(up, "axis x, value 7\n"));
        g_assert_nonnull(strstr(up, "axis y, value 9\n"));
        teardown(&f);
}

/* Another user's process that claims the domain's uuid on its command
 * line is no QEMU of libvirt's: the QEMU is the process of the user the
 * domain's DAC label names, and the domain has its memctx (two claimants
 * of one user would be refused, and the domain would have none). */
static void test_impostor(void) {
        char uuid[VIR_UUID_STRING_BUFLEN];
        vmsig_endpoint *ep;
        virDomainPtr dom;
        pid_t fake;
        Fixture f;

        if (!setup(&f, true))
                return;
        dom = libvirt_harness_start_domain(f.h, "lv-dac", LIBVIRT_RAM_MEMFD, RAM_MIB);
        g_assert_cmpint(virDomainGetUUIDString(dom, uuid), ==, 0);
        virDomainFree(dom);
        fake = libvirt_harness_claim_uuid(uuid, "nobody");
        start_backend(&f, VMSIG_LIBVIRT_DOMAINS_ALL);
        ep = wait_endpoint(&f, "lv-dac");
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_MEMCTX));
        libvirt_harness_end_claim(fake);
        teardown(&f);
}

/* libvirtd killed: the endpoints stay; a domain whose QEMU died meanwhile
 * is detached once libvirtd is back, the other keeps vmid, generation and
 * lease. */
static void test_reconnect(void) {
        const vmsig_lease_holder holder = { .name = ":1.42", .uid = 0 };
        vmsig_lease_info lease;
        vmsig_endpoint *stay, *gone;
        uint32_t vmid, generation;
        Fixture f;
        pid_t pid;

        if (!setup(&f, true))
                return;
        virDomainFree(libvirt_harness_start_domain(f.h, "lv-gone", LIBVIRT_RAM_FILE, RAM_MIB));
        stay = start_with_domain(&f, "lv-stay", LIBVIRT_RAM_FILE, true);
        gone = wait_endpoint(&f, "lv-gone");
        vmid = vmsig_endpoint_get_vmid(stay);
        generation = vmsig_endpoint_get_generation(stay);
        g_assert_cmpint(vmsig_endpoint_lease_acquire(stay, VMSIG_LEASE_POWER, &holder, &lease, NULL), ==, 0);
        pid = libvirt_harness_domain_pid(f.h, "lv-gone");

        libvirt_harness_kill(f.h);
        RUN_UNTIL(&f, !vmsig_libvirt_is_connected(f.lv));
        g_assert_true(vmsig_core_find_endpoint_by_name(f.core, "lv-gone") == gone);
        g_assert_cmpint(kill(pid, SIGKILL), ==, 0);
        libvirt_harness_start(f.h);

        RUN_UNTIL(&f, vmsig_libvirt_is_connected(f.lv));
        RUN_UNTIL(&f, f.removed == 1);
        g_assert_null(vmsig_core_find_endpoint_by_name(f.core, "lv-gone"));
        g_assert_true(vmsig_core_find_endpoint_by_name(f.core, "lv-stay") == stay);
        g_assert_true(vmsig_endpoint_is_attached(stay));
        g_assert_cmpuint(vmsig_endpoint_get_vmid(stay), ==, vmid);
        g_assert_cmpuint(vmsig_endpoint_get_generation(stay), ==, generation);
        g_assert_nonnull(vmsig_endpoint_lease_get(stay, VMSIG_LEASE_POWER));
        g_assert_cmpuint(vmsig_endpoint_lease_get(stay, VMSIG_LEASE_POWER)->id, ==, lease.id);
        g_assert_cmpint(f.removed, ==, 1);
        /* And it is driven through the new connection. */
        lifecycle(&f, stay, VMSIG_OP_PAUSE);
        g_assert_cmpint(domain_state(&f, "lv-stay"), ==, VIR_DOMAIN_PAUSED);
        teardown(&f);
}

/* No libvirtd at start: one warning while the backend retries, then its
 * domains attach when it comes. */
static void test_absent_at_start(void) {
        g_autofree char *log = NULL;
        Fixture f;
        capture c;

        if (!setup(&f, false))
                return;
        capture_begin(&c);
        start_backend(&f, VMSIG_LIBVIRT_DOMAINS_ALL);
        /* Long enough for a few attempts (100, 200, 400, 800 ms apart). */
        vt_event_run_for(f.event, 2 * G_USEC_PER_SEC);
        log = capture_end(&c);
        g_assert_cmpuint(count(log, "Cannot connect to libvirt"), ==, 1);
        g_assert_false(vmsig_libvirt_is_connected(f.lv));

        libvirt_harness_start(f.h);
        virDomainFree(libvirt_harness_start_domain(f.h, "lv-late", LIBVIRT_RAM_FILE, RAM_MIB));
        wait_endpoint(&f, "lv-late");
        g_assert_true(vmsig_libvirt_is_connected(f.lv));
        teardown(&f);
}

/* Tagged: only domains with vmsig's element in their metadata, whether
 * tagged while running or in the XML they were started from. */
static void test_tagged(void) {
        g_autofree char *xml = NULL, *tagged_xml = NULL;
        g_auto(GStrv) parts = NULL;
        virDomainPtr dom;
        Fixture f;

        if (!setup(&f, true))
                return;
        dom = libvirt_harness_start_domain(f.h, "lv-tag1", LIBVIRT_RAM_FILE, RAM_MIB);
        g_assert_cmpint(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, "<vm/>", "vmsig", VMSIG_LIBVIRT_NS,
                                             VIR_DOMAIN_AFFECT_LIVE), ==, 0);
        virDomainFree(dom);
        virDomainFree(libvirt_harness_start_domain(f.h, "lv-plain", LIBVIRT_RAM_FILE, RAM_MIB));
        start_backend(&f, VMSIG_LIBVIRT_DOMAINS_TAGGED);
        wait_endpoint(&f, "lv-tag1");
        RUN_UNTIL(&f, vmsig_libvirt_is_connected(f.lv));
        g_assert_null(vmsig_core_find_endpoint_by_name(f.core, "lv-plain"));

        /* One started from XML that carries the tag (as virsh create). */
        xml = libvirt_harness_domain_xml(f.h, "lv-tag2", LIBVIRT_RAM_FILE, RAM_MIB);
        parts = g_strsplit(xml, "</vcpu>\n", 2);
        tagged_xml = g_strconcat(parts[0], "</vcpu>\n  <metadata><vmsig:vm xmlns:vmsig='" VMSIG_LIBVIRT_NS
                                 "'/></metadata>\n", parts[1], NULL);
        dom = virDomainCreateXML(f.h->conn, tagged_xml, 0);
        g_assert_nonnull(dom);
        wait_endpoint(&f, "lv-tag2");
        g_assert_null(vmsig_core_find_endpoint_by_name(f.core, "lv-plain"));
        g_assert_cmpuint(vmsig_core_endpoint_count(f.core), ==, 2);
        g_assert_cmpint(virDomainDestroy(dom), ==, 0);
        virDomainFree(dom);
        teardown(&f);
}

/* A domain listed while libvirt starts it (PAUSED, STARTING_UP) may have
 * a QEMU that has not mapped its RAM yet: attached then, it would be an
 * endpoint without memctx for good. The domain's emulator is a wrapper
 * that execs QEMU only once the test lets it: meanwhile libvirt waits for
 * QEMU's monitor, the domain is listed as starting, and the process that
 * claims its uuid has no guest RAM. The backend connects and lists in
 * that window; the endpoint comes with libvirt's STARTED, with its
 * memctx. */
/* In the harness's image directory, where QEMU's user may read. */
#define SLOW_QEMU "/var/lib/libvirt/vmsig/slow-qemu"
#define SLOW_QEMU_GO "/var/lib/libvirt/vmsig/slow-qemu.go"

static gpointer start_slow(gpointer data) {
        LibvirtHarness *h = data;
        g_autofree char *base = libvirt_harness_domain_xml(h, "lv-starting", LIBVIRT_RAM_FILE, RAM_MIB);
        g_autoptr(GString) xml = g_string_new(base);

        g_assert_cmpuint(g_string_replace(xml, "<devices>\n", "<devices>\n    <emulator>" SLOW_QEMU "</emulator>\n", 1),
                         ==, 1);
        return virDomainCreateXML(h->conn, xml->str, 0);
}

static bool listed_starting(LibvirtHarness *h) {
        virDomainPtr dom = virDomainLookupByName(h->conn, "lv-starting");
        int state = -1, reason = -1;

        if (dom) {
                (void) virDomainGetState(dom, &state, &reason, 0);
                virDomainFree(dom);
        }
        return state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_STARTING_UP;
}

static void test_listed_while_starting(void) {
        /* Only this domain waits: libvirt's probe of the emulator's
         * capabilities runs the same wrapper. */
        static const char wrapper[] = "#!/bin/sh\n"
                                      "case \"$*\" in *guest=lv-starting,*)\n"
                                      "        while [ ! -e " SLOW_QEMU_GO " ]; do sleep 0.05; done ;;\n"
                                      "esac\n"
                                      "exec qemu-system-x86_64 \"$@\"\n";
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        vmsig_endpoint *ep;
        virDomainPtr dom;
        GThread *starter;
        Fixture f;

        if (!setup(&f, true))
                return;
        g_assert_true(g_file_set_contents(SLOW_QEMU, wrapper, -1, NULL));
        g_assert_cmpint(chmod(SLOW_QEMU, 0755), ==, 0);
        starter = g_thread_new("start", start_slow, f.h);
        while (!listed_starting(f.h)) {
                g_assert_cmpint(g_get_monotonic_time(), <, deadline);
                g_usleep(20 * 1000);
        }
        start_backend(&f, VMSIG_LIBVIRT_DOMAINS_ALL);
        RUN_UNTIL(&f, vmsig_libvirt_is_connected(f.lv)); /* listed, while it starts */
        g_assert_true(listed_starting(f.h));
        g_assert_true(g_file_set_contents(SLOW_QEMU_GO, "", 0, NULL));
        ep = wait_endpoint(&f, "lv-starting");
        g_assert_false(listed_starting(f.h));
        g_assert_true(vmsig_endpoint_has_adapter(ep, VMSIG_ADAPTER_MEMCTX));
        dom = g_thread_join(starter);
        g_assert_nonnull(dom);
        virDomainFree(dom);
        teardown(&f);
}

static void wait_memctx(Fixture *f, vmsig_endpoint *ep) {
        RUN_UNTIL(f, vmsig_memctx_get(f->core, vmsig_endpoint_get_id(ep)));
        g_assert_cmpuint(vmsig_memctx_get(f->core, vmsig_endpoint_get_id(ep))->n_ranges, >, 0);
}

/* Without the monitor, the map of the RAM comes from the domain's live
 * XML: the one fetched for the DAC label when the domain was listed, or
 * probed when it started, not a second one. libvirtd's log of the API's
 * calls counts them. */
static void test_one_xml(void) {
        Fixture f;

        if (!setup(&f, true))
                return;
        wait_memctx(&f, start_with_domain(&f, "lv-listed", LIBVIRT_RAM_MEMFD, false));
        virDomainFree(libvirt_harness_start_domain(f.h, "lv-started", LIBVIRT_RAM_FILE, RAM_MIB));
        wait_memctx(&f, wait_endpoint(&f, "lv-started"));
        g_assert_cmpuint(libvirt_harness_api_calls(f.h, "virDomainGetXMLDesc", "lv-listed"), ==, 1);
        g_assert_cmpuint(libvirt_harness_api_calls(f.h, "virDomainGetXMLDesc", "lv-started"), ==, 1);
        teardown(&f);
}

int main(int argc, char **argv) {
        int r;

        /* Before GLib can start a thread: see libvirt-harness.h. */
        libvirt_harness_enter_namespace();
        /* Plain "vmsigd: ..." lines, whatever the environment of the run. */
        g_unsetenv("JOURNAL_STREAM");
        g_test_init(&argc, &argv, NULL);
        g_assert_cmpint(sd_event_new(&loop), >=, 0);
        /* Before any connection: the harness's too are driven by it. */
        g_assert_cmpint(vmsig_libvirt_event_register(loop), ==, 0);
        VT_TESTS("/libvirt-backend/", test_lifecycle, test_input_frames, test_input_withdrawn, test_impostor,
                 test_reconnect, test_absent_at_start, test_tagged, test_listed_while_starting, test_one_xml);
        r = g_test_run();
        sd_event_unref(loop);
        return r;
}
