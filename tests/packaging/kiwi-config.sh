#!/bin/bash
# Stand-in for the image's KIWI config.sh, reduced to what concerns
# rdd-guest: the preamble every KIWI config.sh has, then the loop that
# sources config.sh.d/ (doc/adopting-in-kiwi.md). The tests copy it to
# /image/config.sh in the chroot and run it as KIWI does:
#   chroot ROOT bash /image/config.sh    (kiwi_profiles in the environment)
#
# No errexit on purpose: a config.sh may or may not set it, and the snippet
# must stop the build on its own (exit 1) either way. nounset is on so a
# snippet that reads an unset variable fails here.
set -o nounset -o pipefail

test -f /.kconfig && . /.kconfig
test -f /.profile && . /.profile

for snippet in /image/config.sh.d/*.sh; do
	if [ -f "$snippet" ]; then
		# shellcheck source=/dev/null
		. "$snippet"
	fi
done
