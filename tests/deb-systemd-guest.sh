# Shell functions for tests/test-deb-systemd.c, run inside the systemd
# guest (tests/systemd-guest.h), which finds this file next to the packages
# on its second disk and sources it: ". /mnt/debs/deb-systemd-guest.sh".
# Plain POSIX sh (the guest's dash); every function prints what the test
# needs to see and returns non-zero on failure.

VM=testvm
VM_USER=qemuuser
QMP_DIR=/run/qemuvm
QMP_SOCKET=$QMP_DIR/qmp.sock
RAM_DIR=/dev/shm/qemuvm
RAM_FILE=$RAM_DIR/ram
TRIGGER=/run/vmsig/vms.d/$VM.xml

# wait_for TRIES CMD...: runs CMD every 0.5 s until it succeeds, at most
# TRIES times; its last status.
wait_for() {
        n=$1
        shift
        while ! "$@" >/dev/null 2>&1; do
                n=$((n - 1))
                [ $n -gt 0 ] || return 1
                sleep 0.5
        done
}

# start_vm: QEMU (TCG, 128 MiB, firmware only) as its own user, as libvirt
# would start it: umask 077, so its RAM file and QMP socket are its alone,
# in directories only it can enter.
start_vm() {
        id "$VM_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$VM_USER" || return
        install -d -o "$VM_USER" -g "$VM_USER" -m 0700 "$QMP_DIR" "$RAM_DIR" || return
        systemd-run --quiet --unit="$VM" --uid="$VM_USER" -p UMask=0077 \
                qemu-system-x86_64 -machine q35,accel=tcg -m 128M \
                -object memory-backend-file,id=ram0,size=128M,mem-path="$RAM_FILE",share=on \
                -machine memory-backend=ram0 -qmp unix:"$QMP_SOCKET",server=on,wait=off \
                -display none -nodefaults -monitor none -serial none || return
        wait_for 120 test -S "$QMP_SOCKET" || { journalctl -u "$VM" --no-pager; return 1; }
        ls -ld "$QMP_DIR" "$QMP_SOCKET" "$RAM_DIR" "$RAM_FILE"
}

# announce_vm: the trigger file, written under another name and renamed
# into place, as vm.rng asks.
announce_vm() {
        printf '<vm name="%s"><qmp socket="%s"/><ram path="%s"/></vm>\n' "$VM" "$QMP_SOCKET" "$RAM_FILE" \
                >"/run/vmsig/vms.d/.$VM.tmp" &&
                mv "/run/vmsig/vms.d/.$VM.tmp" "$TRIGGER"
}

# until_endpoint NAME TRIES TEST: until the shell command TEST (which may
# use these functions) succeeds, at most TRIES times; prints the status of
# endpoint NAME, and vmsigd's journal if TEST never succeeded.
until_endpoint() {
        if ! wait_for "$2" sh -c ". /mnt/debs/deb-systemd-guest.sh; $3"; then
                vmsigctl status "$1"
                journalctl -u vmsigd --no-pager | tail -30
                return 1
        fi
        vmsigctl status "$1"
}

# wait_endpoint: until vmsigd has attached the VM and talked to its QEMU
# (the endpoint comes first, in state unknown).
wait_endpoint() {
        until_endpoint "$VM" 60 "vmsigctl status $VM | grep -q 'State: running'"
}

# ram_bytes ADDR LEN: the bytes of the RAM file at ADDR, as hex digits.
ram_bytes() {
        od -An -tx1 -v -j "$(($1))" -N "$2" "$RAM_FILE" | tr -d ' \n'
}

# with_password PASSWORD CMD...: runs CMD on a new pty (script(1)), so
# that vmsigctl starts pkttyagent there, and types PASSWORD once the agent
# asks for it. Prints the terminal; CMD's status.
with_password() {
        pw=$1
        shift
        d=$(mktemp -d) || return
        mkfifo "$d/in" || return
        # The pty's input comes from the fifo, kept open on fd 3 until CMD
        # ends: the end of input would end script.
        script -qfec "$*" "$d/log" <"$d/in" >/dev/null &
        pid=$!
        exec 3>"$d/in"
        wait_for 240 sh -c "grep -q 'Password:' $d/log || ! kill -0 $pid"
        grep -q 'Password:' "$d/log" && printf '%s\n' "$pw" >&3
        wait "$pid"
        rc=$?
        exec 3>&-
        cat "$d/log"
        rm -rf "$d"
        return $rc
}

# seatless CMD...: CMD as tester in a login session of its own, through
# PAM (pam_systemd) like a remote login, without a seat or terminal.
seatless() {
        systemd-run --quiet --uid=tester -p PAMName=login --pipe --wait -- "$@"
}

# session_props: the calling process's logind session.
session_props() {
        loginctl show-session "$XDG_SESSION_ID" -p Name -p Seat -p Active -p Class
}

# hold_lease N: vmsigctl holds the power lease of the VM in the
# background, its output in /var/tmp/leaseN.out; returns once it holds it.
hold_lease() {
        vmsigctl lease "$VM" power >"/var/tmp/lease$1.out" 2>&1 &
        echo $! >"/var/tmp/lease$1.pid"
        wait_for 120 grep -q '^/org/vmsig/' "/var/tmp/lease$1.out"
        rc=$?
        cat "/var/tmp/lease$1.out"
        return $rc
}

# lease_gone N: waits until the holder of lease N has exited.
lease_gone() {
        wait_for 120 sh -c "! kill -0 $(cat "/var/tmp/lease$1.pid")"
        rc=$?
        cat "/var/tmp/lease$1.out"
        return $rc
}

# --- a libvirt domain (libvirtd under systemd, QEMU as libvirt-qemu) -------

LV_VM=lvmemfd
LV_FILE_VM=lvfile
LV_DROPIN=/etc/systemd/system/vmsigd.service.d/libvirt-memctx.conf
LV_RULES=/etc/polkit-1/rules.d/49-vmsig-test-nobody.rules

# ms: milliseconds since the epoch.
ms() {
        echo $(($(date +%s%N) / 1000000))
}

# lv_define NAME SOURCE: a domain of 64 MiB with shared RAM of that source
# type (memfd or file), started paused (no kernel, no disk: its firmware
# never runs).
lv_define() {
        printf '%s\n' "<domain type='qemu'><name>$1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>" \
                "<memoryBacking><source type='$2'/><access mode='shared'/></memoryBacking>" \
                "<os><type arch='x86_64' machine='q35'>hvm</type></os>" \
                "<devices><controller type='usb' model='none'/><memballoon model='none'/></devices></domain>" \
                >"/var/tmp/$1.xml"
        virsh -q define "/var/tmp/$1.xml" && virsh -q start --paused "$1"
}

# start_libvirt_vm: libvirtd through its socket unit, then two domains,
# with memfd RAM and with a RAM file. Prints how long each part took:
# libvirtd's first answer includes its probe of QEMU's capabilities.
start_libvirt_vm() {
        t0=$(ms)
        systemctl start libvirtd.socket || return
        wait_for 600 virsh -q version || { journalctl -u libvirtd --no-pager | tail -20; return 1; }
        t1=$(ms)
        lv_define $LV_VM memfd && lv_define $LV_FILE_VM file || return
        echo "libvirtd answered in $((t1 - t0)) ms, the domains started in $(($(ms) - t1)) ms"
        virsh -q list --all
}

# lv_capabilities NAME: the domain's endpoint capabilities.
lv_capabilities() {
        vmsigctl status "$1" | sed -n 's/^ *Capabilities: //p'
}

# wait_lv_endpoint NAME [memctx]: until the domain is an endpoint (with
# memctx among its capabilities, if asked); prints its status.
wait_lv_endpoint() {
        until_endpoint "$1" 240 "lv_capabilities $1 | grep -q '${2:-.}'"
}

# lv_ram_modes: the modes of the domains' RAM: the memfd as QEMU holds it,
# and the file.
lv_ram_modes() {
        pid=$(cat /run/libvirt/qemu/$LV_VM.pid) || return
        for f in /proc/"$pid"/fd/*; do
                [ "$(readlink "$f")" = "/memfd:memory-backend-memfd (deleted)" ] && echo "memfd $(stat -L -c %a "$f")"
        done
        stat -c "file %a %U" /var/lib/libvirt/qemu/ram/*-$LV_FILE_VM/pc.ram
}

# lv_ram_bytes NAME ADDR LEN: guest memory at ADDR as QEMU sees it, as hex
# digits, read through libvirt's monitor passthrough.
lv_ram_bytes() {
        virsh -q qemu-monitor-command --hmp "$1" "xp /$3xb $2" | sed 's/^[^:]*://' | sed 's/0x//g' | tr -d ' \n\r'
}

# lv_probe_as_nobody NAME: nobody, allowed the memctx (a polkit rule), gets
# the domain's RAM fd and tries to write through it every way it can.
lv_probe_as_nobody() {
        echo 'polkit.addRule(function(action, subject) { if (action.id == "org.vmsig.memctx" &&
                subject.user == "nobody") return polkit.Result.YES; });' >$LV_RULES
        # polkitd picks the rule up on its own, soon after.
        wait_for 60 sh -c "setpriv --reuid=nobody --regid=nogroup --clear-groups /mnt/debs/vmsig-test-client \
                --probe-memctx /org/vmsig/endpoint/$1 org.freedesktop.DBus.Peer Ping | grep -q subscribed"
        setpriv --reuid=nobody --regid=nogroup --clear-groups /mnt/debs/vmsig-test-client \
                --probe-memctx "/org/vmsig/endpoint/$1" org.freedesktop.DBus.Peer Ping
        rc=$?
        rm -f $LV_RULES
        return $rc
}
