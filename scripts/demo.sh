#!/bin/sh
# Install dependencies, build, and start vmsigd in stub mode with two stub
# VMs on a private system bus; show its objects and leave it running.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
builddir="$top/_build"
run="${VMSIG_DEMO_DIR:-/tmp/vmsig-demo}"
. "$top/scripts/deps.sh"
"$top/scripts/build.sh" "$builddir"

# Stop a previous demo.
if [ -f "$run/pids" ]; then
        kill $(cat "$run/pids") 2>/dev/null || true
        sleep 0.2
fi
rm -rf "$run"
mkdir -p "$run"

cat > "$run/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$run/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
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
echo "Talk to it:  export DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS"
echo "Stop it:     kill \$(cat $run/pids)"
