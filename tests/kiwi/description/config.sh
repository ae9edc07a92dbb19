#!/usr/bin/env bash
# tests/kiwi: config.sh shaped like rancher-desktop-opensuse's once its
# patch series (contrib/rancher-desktop-opensuse) is applied: the same
# preamble, rdd-guest installed from build/rdd-guest/ in the wsl branch
# with the lines patch 0002 adds, and /build/ removed after the profile
# branches.

#======================================
# Include functions & variables
#--------------------------------------
test -f /.kconfig && . /.kconfig
test -f /.profile && . /.profile

set -o errexit

#======================================
# Test scaffolding (not upstream's): the rpm database of a Debian root
# knows nothing of glibc and libsystemd0, which the rdd-guest RPM
# requires; a fixture package declares what this root's own libc.so.6
# and libsystemd.so.0 provide (tests/kiwi/run.sh builds it).
#--------------------------------------
rpm -i --nodeps /build/fixtures/*.rpm

#======================================
# WSL-specific fixes
#--------------------------------------
if [[ ${kiwi_profiles:-} =~ wsl ]]; then
    # The Docker socket bridge for the Windows host: install the rdd-guest
    # RPM that the Dockerfile staged in build/rdd-guest/, with the snippet
    # from the same release. Its %post enables rdd-guest.service; any
    # failure stops the build.
    # shellcheck disable=SC2034 # read by the snippet
    RDD_GUEST_RPM_DIR=/build/rdd-guest
    # shellcheck source=/dev/null
    . /build/rdd-guest/rdd-guest.sh
fi

#======================================
# Remove the build inputs (after the profile branches, which may use them)
#--------------------------------------
rm -rf /build/
