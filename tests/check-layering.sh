#!/bin/sh
# The layers, checked by the symbols each object file uses (nm), not by the
# headers it names: a header-only helper costs nothing, a call across a
# boundary is what counts. Prints TAP. Runs in a build directory
# ($VMSIG_BUILDDIR), on the objects built there.
#
# The allowed graph, one line per layer: its source directories, and the
# layers whose symbols it may use ("-": none of ours). A symbol no layer of
# ours defines (libc, libsystemd, libxml2, libvirt, ...) is free, but for
# the D-Bus rule below.
graph='
shared     src/shared      -
core       src/core        shared
endpoint   src/endpoint    core,shared
memctx     src/memctx      endpoint,core,shared
host       src/host        memctx,endpoint,core,shared
discovery  src/discovery   memctx,endpoint,core,shared
bus        src/bus         memctx,endpoint,core,shared
daemon     src/daemon      bus,discovery,host,memctx,endpoint,core,shared
vgpu       src/vgpu        core-api
ctl        src/ctl         shared
'
# core-api: the public API of libvmsig-core and of the endpoint layer that
# vmsigd exports to the plugin libraries it loads (src/vmsigd.dynamic-list);
# libvmsig-vgpu is one and may use nothing else of ours. vmsigctl uses
# libsystemd and the shared helpers (the one key table). Only the D-Bus front, the daemon and vmsigctl speak D-Bus.
sd_bus_layers="bus daemon ctl"

build="${VMSIG_BUILDDIR:-.}"
top="${VMSIG_SRCDIR:-$(dirname "$0")/..}"
# shellcheck source=tests/tap.sh
. "$(dirname "$0")/tap.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmsig-layering.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The objects of a layer: those built from its directories, without the
# copies compiled into test programs (tests_*).
objects() {
        for d in $(echo "$1" | tr ',' ' '); do
                [ -d "$build/$d" ] && find "$build/$d" -name '*.o' ! -name 'tests_*'
        done
        return 0
}

echo "$graph" | while read -r layer dirs uses; do
        [ -n "$layer" ] || continue
        objects "$dirs" | sort >"$tmp/$layer.objects"
        while read -r o; do
                nm --defined-only -g "$o" | awk 'NF == 3 { print $3 }'
        done <"$tmp/$layer.objects" | sort -u | sed "s/\$/ $layer/" >"$tmp/$layer.defined"
        echo "$layer $uses $dirs" >>"$tmp/layers"
done
sort -k1,1 "$tmp"/*.defined >"$tmp/owners"
sed -n 's/^[[:space:]]*\(vmsig_[a-z_]*\)\*;$/\1/p' "$top/src/vmsigd.dynamic-list" >"$tmp/core-api"

in_core_api() {
        while read -r prefix; do
                case "$1" in "$prefix"*) return 0 ;; esac
        done <"$tmp/core-api"
        return 1
}

# What the objects of a layer use from other layers, against its line.
crossings() {
        while read -r o; do
                nm -u "$o" | awk '{ print $2 }' | sort -u | join - "$tmp/owners" |
                        while read -r sym owner; do
                                [ "$owner" = "$1" ] && continue
                                if [ "$2" = core-api ]; then
                                        { [ "$owner" = core ] || [ "$owner" = endpoint ]; } && in_core_api "$sym" &&
                                                continue
                                else
                                        case ",$2," in *",$owner,"*) continue ;; esac
                                fi
                                echo "${o#"$build"/}: $sym (of $owner)"
                        done
        done <"$tmp/$1.objects"
}

while read -r layer uses dirs; do
        count=$(wc -l <"$tmp/$layer.objects")
        if [ "$count" -eq 0 ]; then
                tap_result "$layer uses only ${uses} of ours" 1 "no objects in $build/{$dirs}: build first"
                continue
        fi
        tap_empty "$layer ($count objects) uses only ${uses} of ours" "$(crossings "$layer" "$uses")"
        case " $sd_bus_layers " in
        *" $layer "*) ;;
        *) tap_empty "$layer does not speak D-Bus" "$(while read -r o; do
                nm -u "$o" | awk -v o="${o#"$build"/}" '$2 ~ /^sd_bus_/ { print o ": " $2 }'
        done <"$tmp/$layer.objects")" ;;
        esac
done <"$tmp/layers"
tap_done
