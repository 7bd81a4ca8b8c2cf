#!/bin/sh
# The core never reaches into the D-Bus front or a host backend, and only the
# front speaks sd-bus. Prints TAP.
src="${VMSIG_SRCDIR:-$(dirname "$0")/..}/src"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"
layer_core="$src/core $src/endpoint $src/memctx"
tap_empty "core includes no D-Bus front header" "$(grep -rnE '#include +"bus-' $layer_core)"
tap_empty "core includes no host backend header" "$(grep -rnE '#include +"(stub|qmp)[^"]*\.h"' $layer_core)"
tap_empty "core does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' $layer_core)"
tap_empty "backends include no D-Bus front header" "$(grep -rnE '#include +"bus-' "$src/host")"
tap_empty "backends do not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/host")"
tap_empty "discovery includes no D-Bus front or backend header" "$(grep -rnE '#include +"(bus-|stub|qmp)[^"]*\.h"' "$src/discovery")"
tap_empty "discovery does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/discovery")"
tap_empty "front includes no host backend header" "$(grep -rnE '#include +"(stub|qmp)[^"]*\.h"' "$src/bus")"
# The sensor library shows how an out-of-tree one plugs in: the public core
# API (vmsig-core.h, vmsig-endpoint.h) and its own files; of ours only the
# header-only cleanup macros, nothing it would have to link.
tap_empty "vgpu includes only the public core API of ours" \
        "$(grep -rnE '#include +"[^"]+"' "$src/vgpu" |
           grep -vE '#include +"(vmsig-core|vmsig-endpoint|vmsig-vgpu|vgpu-[a-z-]+|macro)\.h"')"
tap_empty "vgpu does not use sd-bus" "$(grep -rnE 'sd-bus\.h|sd_bus_' "$src/vgpu")"
tap_empty "the front knows vgpu only by its public header" \
        "$(grep -rnE '#include +"vgpu-[a-z-]+\.h"' "$src/bus" "$src/daemon" "$src/core" "$src/endpoint")"
tap_done
