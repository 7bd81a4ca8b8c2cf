#!/bin/sh
# The core never reaches into the D-Bus front or a host backend, and only the
# front speaks sd-bus. Prints TAP.
src="${VMSIG_SRCDIR:-$(dirname "$0")/..}/src"
n=0
fail=0
check() {
        n=$((n + 1))
        if [ -z "$2" ]; then
                echo "ok $n - $1"
        else
                echo "not ok $n - $1"
                echo "$2" | sed 's/^/# /'
                fail=1
        fi
}
layer_core="$src/core $src/endpoint $src/memctx"
check "core includes no D-Bus front header" "$(grep -rnE '#include +"bus-' $layer_core)"
check "core includes no host backend header" "$(grep -rnE '#include +"(stub|qmp)[^"]*\.h"' $layer_core)"
check "core does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' $layer_core)"
check "backends include no D-Bus front header" "$(grep -rnE '#include +"bus-' "$src/host")"
check "backends do not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/host")"
check "discovery includes no D-Bus front or backend header" "$(grep -rnE '#include +"(bus-|stub|qmp)[^"]*\.h"' "$src/discovery")"
check "discovery does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/discovery")"
check "front includes no host backend header" "$(grep -rnE '#include +"(stub|qmp)[^"]*\.h"' "$src/bus")"
# The sensor library shows how an out-of-tree one plugs in: the public core
# API (vmsig-core.h, vmsig-endpoint.h) and its own files; of ours only
# header-only helpers (cleanup macros, now_usec, loop_write), nothing it
# would have to link.
check "vgpu includes only the public core API of ours" \
        "$(grep -rnE '#include +"[^"]+"' "$src/vgpu" |
           grep -vE '#include +"(vmsig-core|vmsig-endpoint|vmsig-vgpu|vgpu-[a-z-]+|macro|time-util|fd-util)\.h"')"
check "vgpu does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/vgpu")"
check "the front knows vgpu only by its public header" \
        "$(grep -rnE '#include +"vgpu-[a-z-]+\.h"' "$src/bus" "$src/daemon" "$src/core" "$src/endpoint")"
echo "1..$n"
exit $fail
