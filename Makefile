# rdd-guest: make, make check, make install DESTDIR=... PREFIX=...
# CFLAGS/LDFLAGS are the caller's; what the code needs to build at all is in
# RDD_CFLAGS and is always added.

VERSION := $(shell cat VERSION)

PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/rdd-guest
DESTDIR ?=

BUILD      ?= build
CC         ?= cc
CFLAGS     ?= -O2 -g
LDFLAGS    ?=
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3

SYSTEMD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
SYSTEMD_LIBS   := $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null)
# Only the targets that compile need it: make dist works anywhere.
ifneq ($(filter-out dist manifest clean,$(or $(MAKECMDGOALS),all)),)
ifeq ($(SYSTEMD_LIBS),)
$(error libsystemd not found by $(PKG_CONFIG): install libsystemd-dev (Debian) or systemd-devel (openSUSE))
endif
endif

# Warnings are errors here and in CI; the RPM's build sets WERROR= so that
# a warning a newer compiler adds cannot fail a distribution's build.
WERROR ?= -Werror

RDD_CFLAGS = -std=c11 -Wall -Wextra $(WERROR) -D_GNU_SOURCE \
	-DRDD_GUEST_VERSION='"$(VERSION)"' $(SYSTEMD_CFLAGS) -MMD -MP

SOURCES  := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(filter-out src/main.c,$(SOURCES)))
MAIN_OBJ := $(BUILD)/obj/main.o
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all check check-unit check-integration check-sanitize check-valgrind \
	check-packaging check-kiwi check-vm check-docker check-stress check-stress-sanitize bench rpm \
	dist manifest install uninstall clean

all: $(BUILD)/rdd-guest

$(BUILD)/obj/%.o: src/%.c VERSION | $(BUILD)/obj
	$(CC) $(RDD_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/rdd-guest: $(MAIN_OBJ) $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(SYSTEMD_LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(RDD_CFLAGS) -Isrc $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(SYSTEMD_LIBS)

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# Every suite; each prints "N passed, N failed" as its last line.
check: check-unit check-integration check-packaging check-kiwi check-vm check-docker

check-unit: $(UNIT_TESTS)
	@tests/unit/run $(UNIT_TESTS)

check-integration: $(BUILD)/rdd-guest
	RDD_GUEST=$(abspath $(BUILD)/rdd-guest) $(PYTHON) -m pytest -q tests/integration

# The whole suite again, built with AddressSanitizer and UBSan in its own
# build directory; any report fails the run.
SANITIZE_FLAGS = BUILD=build/sanitize CC=clang \
	CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	LDFLAGS="-fsanitize=address,undefined"

check-sanitize:
	RDD_SANITIZED=1 $(MAKE) $(SANITIZE_FLAGS) check-unit check-integration

# The integration tests with the daemon under valgrind's memcheck.
check-valgrind: $(BUILD)/rdd-guest
	RDD_GUEST=$(abspath $(BUILD)/rdd-guest) RDD_VALGRIND=1 $(PYTHON) -m pytest -q tests/integration

# Soak, exhaustion, hostile peers, faults, signals, bad input, fuzzing;
# one figure line per scenario. The second target runs it against the
# ASan/UBSan build.
check-stress: $(BUILD)/rdd-guest
	tests/stress/run.sh $(abspath $(BUILD)/rdd-guest)

check-stress-sanitize:
	$(MAKE) $(SANITIZE_FLAGS) all
	RDD_SANITIZED=1 tests/stress/run.sh $(abspath build/sanitize/rdd-guest)

# The daemon on a real kernel's AF_VSOCK: Debian's kernel under qemu.
check-vm: $(BUILD)/rdd-guest
	tests/vm/run.sh $(abspath $(BUILD)/rdd-guest)

# The real docker CLI through the bridge against a private dockerd.
check-docker: $(BUILD)/rdd-guest
	tests/docker/run.sh $(abspath $(BUILD)/rdd-guest)

# The RPM, the unit and the KIWI snippet, in a Debian chroot.
check-packaging:
	tests/packaging/run.sh

# The release tarball $(DISTDIR)/rdd-guest-VERSION.tar.gz: the files MANIFEST
# lists, the same bytes from a git checkout or a plain copy of the tree.
DISTDIR ?= $(BUILD)
dist:
	tools/dist.sh $(DISTDIR)

# MANIFEST's list rewritten from git ls-files (after adding or removing a file).
manifest:
	tools/dist.sh --manifest

# Source and binary RPMs under build/rpm, built from the dist tarball.
rpm:
	tests/packaging/build-rpm.sh

# A real kiwi-ng system prepare (Debian's kiwi) of a description shaped like
# the image's, for the lima and wsl profiles.
check-kiwi:
	tests/kiwi/run.sh

# Not part of check: figures, not pass/fail.
bench: $(BUILD)/rdd-guest
	bench/run.sh $(abspath $(BUILD)/rdd-guest)

install: $(BUILD)/rdd-guest
	install -D -m 0755 $(BUILD)/rdd-guest $(DESTDIR)$(SBINDIR)/rdd-guest
	install -D -m 0644 doc/rdd-guest.8 $(DESTDIR)$(MANDIR)/man8/rdd-guest.8
	install -D -m 0644 systemd/rdd-guest.service $(DESTDIR)$(UNITDIR)/rdd-guest.service

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/rdd-guest $(DESTDIR)$(MANDIR)/man8/rdd-guest.8 \
		$(DESTDIR)$(UNITDIR)/rdd-guest.service

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/obj/*.d)
