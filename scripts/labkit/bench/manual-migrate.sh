#!/bin/sh
# The manual procedure an operator runs today for one guest with an encrypted vTPM: copy its
# libvirt secret to the destination (definition, then value), then live-migrate it. One virsh
# process per step, as typed at a shell. The bench's baseline (scripts/bench, parts 1 and 3):
#
#   sh manual-migrate.sh SRC_URI GUEST SECRET_UUID DST_URI
#   printf '%s\n' 'GUEST UUID DST' ... | xargs -P N -n 3 sh manual-migrate.sh SRC_URI
#
# NOTE: like the usual operator procedure, the value travels base64-encoded on
# secret-set-value's command line (visible in ps for the life of that process); migcoord
# never puts it on argv. The secret UUID is given: discovering it is not part of the procedure.
set -eu
src=$1 guest=$2 uuid=$3 dst=$4
xml=$(mktemp)
trap 'rm -f "$xml"' EXIT
virsh -q -c "$src" secret-dumpxml "$uuid" >"$xml"
virsh -q -c "$dst" secret-define "$xml" >/dev/null
virsh -q -c "$dst" secret-set-value "$uuid" --base64 "$(virsh -q -c "$src" secret-get-value "$uuid")" >/dev/null
virsh -q -c "$src" migrate --live --p2p --persistent --undefinesource "$guest" "$dst"
