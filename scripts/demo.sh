#!/bin/sh
# Install dependencies, build, and start vmsigd in stub mode with two stub
# VMs on a private system bus; show its objects and leave it running.
#   scripts/demo.sh        start (again) the demo
#   scripts/demo.sh env    the shell lines that point busctl and vmsigctl at
#                          the running demo: eval "$(scripts/demo.sh env)"
#   scripts/demo.sh stop   stop it
# $VMSIG_DEMO_DIR: where it runs (/tmp/vmsig-demo); $VMSIG_DEMO_BUILDDIR:
# a build to use as it is, instead of building _build.
set -e
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
run="${VMSIG_DEMO_DIR:-/tmp/vmsig-demo}"

stop() {
        if [ -f "$run/pids" ]; then
                kill $(cat "$run/pids") 2>/dev/null || true
                sleep 0.2
        fi
}

case "${1:-}" in
env)
        [ -f "$run/builddir" ] || { echo "No demo runs in $run; start it with $0." >&2; exit 1; }
        echo "export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$run/system_bus_socket"
        echo "export PATH=$(cat "$run/builddir"):\$PATH"
        exit 0 ;;
stop)
        stop
        rm -rf "$run"
        exit 0 ;;
"") ;;
*)
        echo "usage: $0 [env|stop]" >&2
        exit 2 ;;
esac

if [ -n "${VMSIG_DEMO_BUILDDIR:-}" ]; then
        builddir=$VMSIG_DEMO_BUILDDIR
else
        builddir="$top/_build"
        . "$top/scripts/deps.sh"
        "$top/scripts/build.sh" "$builddir"
fi

stop
rm -rf "$run"
mkdir -p "$run"
echo "$builddir" > "$run/builddir"

cat > "$run/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$run/system_bus_socket</listen>
  <include>$top/tests/system-bus-policy.conf</include>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <include>$top/data/org.vmsig.conf</include>
</busconfig>
CONF

cat > "$run/vmsigd.conf" <<CONF
<?xml version="1.0" encoding="UTF-8"?>
<vmsigd>
  <log level="info"/>
  <stub-vm name="alpha" ram-size="64M"/>
  <stub-vm name="beta" ram-size="32M" state="paused"/>
</vmsigd>
CONF

dbus-daemon --config-file="$run/bus.conf" --fork --print-pid > "$run/bus.pid"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$run/system_bus_socket"
# The frames plugin of this build, not an installed one (vmsigd(8)).
VMSIG_VGPU_LIBRARY="$builddir/.libs/libvmsig-vgpu.so.0" \
        "$builddir/vmsigd" --config "$run/vmsigd.conf" --private-socket="$run/private" > "$run/vmsigd.log" 2>&1 &
echo "$(cat "$run/bus.pid") $!" > "$run/pids"

i=0
until busctl --system status org.vmsig >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
                cat "$run/vmsigd.log"
                exit 1
        fi
        sleep 0.1
done

echo "vmsigd is running on a private system bus (log: $run/vmsigd.log)."
echo
echo "\$ busctl --system tree org.vmsig"
busctl --system --no-pager tree org.vmsig
echo
echo "\$ busctl --system call org.vmsig /org/vmsig org.vmsig.Manager ListEndpoints"
busctl --system call org.vmsig /org/vmsig org.vmsig.Manager ListEndpoints
for vm in alpha beta; do
        echo
        echo "\$ busctl --system introspect org.vmsig /org/vmsig/endpoint/$vm org.vmsig.Endpoint"
        busctl --system --no-pager introspect org.vmsig /org/vmsig/endpoint/$vm org.vmsig.Endpoint
done
echo
echo "Talk to it:  eval \"\$($0 env)\"   (then: vmsigctl list, busctl --system tree org.vmsig)"
echo "Stop it:     $0 stop"
