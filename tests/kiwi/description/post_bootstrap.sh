#!/bin/bash
# KIWI runs this chrooted in the new root after the bootstrap. A shared
# cache under /tmp leaves the root's /tmp 0755; packages' scripts (and
# the snippet's mktemp) need it world-writable as usual.
set -o errexit
chmod 1777 /tmp
