# SPDX-License-Identifier: MIT
# kvmfault: `make` builds the library, tools and tests; `make check` runs
# every test; `make run` runs the demo; `make install PREFIX=...` installs.
#
# VARIANT selects a build tree: (none) build/, asan build/asan/ (ASan and
# UBSan), static build/static/ (static programs for the QEMU rig).

VERSION := 0.5.0
# The shared library's ABI: bumped whenever a public struct or a call
# changes incompatibly (1: kf_remote_config.push_streams and
# kf_remote_stats.push_stream_pages, migration protocol 4; 2: MTE
# allocation tags: kf_pagesrc_sink_fn's tags, kf_pagesrc_ops.read_tagged,
# kf_page_server_config.read_tags, migration protocol 5; host pages:
# kf_pagesrc.push_unit; 3: kf_remote_stats.push_threads_lowered).
SOVERSION := 3
# CROSS_COMPILE=aarch64-linux-gnu- builds for arm64 (under build/arm64/).
CROSS_COMPILE ?=
ifneq ($(CROSS_COMPILE),)
CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
endif
CC ?= gcc
PREFIX ?= /usr/local
# The target architecture: the directory of its code in lib/ and
# include/kvmfault/, from what the compiler builds for.
ARCH := $(if $(filter aarch64%,$(shell $(CC) -dumpmachine)),arm64,x86)

BUILD := build$(if $(filter arm64,$(ARCH)),/arm64)$(if $(VARIANT),/$(VARIANT))

CFLAGS ?= -O2 -g
KF_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
	-D_GNU_SOURCE -Iinclude -pthread -fPIC -MMD -MP \
	-fno-tree-loop-distribute-patterns
# Guest code is this program's own code at its link addresses.
KF_LDFLAGS := -no-pie -pthread
KF_LIBS := -lxxhash -lssl -lcrypto

ifeq ($(VARIANT),asan)
KF_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
KF_LDFLAGS += -fsanitize=address,undefined
else ifeq ($(VARIANT),static)
KF_LDFLAGS += -static
else ifneq ($(VARIANT),)
$(error unknown VARIANT '$(VARIANT)': use asan or static)
endif

LIB_SRCS := $(wildcard lib/*.c lib/$(ARCH)/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
# The harness: the test helpers, the migration workload and runner with
# its reports.  The tool and the tests link it; it is not installed.
HARNESS_SRCS := $(wildcard lib/harness/*.c)
HARNESS_OBJS := $(HARNESS_SRCS:%.c=$(BUILD)/obj/%.o)
HARNESS_LIB := $(BUILD)/libkvmfault-harness.a
HARNESS_INC := -Ilib/harness/include
# What make install puts in include/kvmfault/: the public headers.
PUBLIC_HEADERS := $(wildcard include/kvmfault/*.h)
# Tests for every architecture, and tests/$(ARCH)/ for this one only.
TEST_SRCS := $(wildcard tests/*.c)
ARCH_TEST_SRCS := $(wildcard tests/$(ARCH)/*.c)
ARCH_TESTS := $(ARCH_TEST_SRCS:tests/$(ARCH)/%.c=$(BUILD)/tests/%)
TESTS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%) $(ARCH_TESTS)
# One tool, kvmfault, with a subcommand in each tools/builtin-*.c.
TOOL_SRCS := $(wildcard tools/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TOOLS := $(BUILD)/bin/kvmfault
# Examples of VMMs that embed the core: position independent programs.
# The static variant links them static-pie beside the tests, so that the
# rig runs them on the patched kernels too.  They set up x86 vCPUs.
EXAMPLE_SRCS := $(if $(filter x86,$(ARCH)),$(wildcard examples/*.c))
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/$(if $(filter static,$(VARIANT)),tests,examples)/%)
STATIC_LIB := $(BUILD)/libkvmfault.a
SHARED_LIB := $(BUILD)/libkvmfault.so

.PHONY: all lib tests tools examples check run deps install clean
.SECONDARY:
all: lib tools tests examples

lib: $(STATIC_LIB) $(if $(VARIANT),,$(SHARED_LIB)) $(HARNESS_LIB)
tests: $(TESTS) $(if $(filter static,$(VARIANT)),$(EXAMPLES))
tools: $(TOOLS)
examples: $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KF_CFLAGS) -c -o $@ $<

$(BUILD)/obj/tests/%.o $(BUILD)/obj/tools/%.o: KF_CFLAGS += -fno-PIC
# Only the public API (KF_API_BEGIN/END in include/kvmfault/) leaves the
# shared library; lib/kvmfault.api lists it and makes its version script.
$(BUILD)/obj/lib/%.o: KF_CFLAGS += -fvisibility=hidden
$(BUILD)/obj/lib/harness/%.o $(BUILD)/obj/tests/%.o $(BUILD)/obj/tools/%.o: KF_CFLAGS += $(HARNESS_INC)

$(STATIC_LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/kvmfault.map: lib/kvmfault.api
	@mkdir -p $(dir $@)
	{ echo 'KVMFAULT_0 {'; echo 'global:'; \
	  sed -n 's/^\(kf_[a-z0-9_]*\)$$/\t\1;/p' $<; \
	  echo 'local: *;'; echo '};'; } > $@

$(HARNESS_LIB): $(HARNESS_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS) $(BUILD)/kvmfault.map
	$(CC) -shared -Wl,-soname,libkvmfault.so.$(SOVERSION) -Wl,--version-script=$(BUILD)/kvmfault.map \
		-Wl,--no-undefined -pthread -o $@ $(LIB_OBJS) $(KF_LIBS)

# A static pattern rule: a test that moved to tests/$(ARCH)/ may have a
# stale object rule (build/**/*.d) under its old name.
$(ARCH_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/$(ARCH)/%.o $(HARNESS_LIB) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(KF_LDFLAGS) -o $@ $< $(HARNESS_LIB) $(STATIC_LIB) $(KF_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(HARNESS_LIB) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(KF_LDFLAGS) -o $@ $< $(HARNESS_LIB) $(STATIC_LIB) $(KF_LIBS) -lm

$(BUILD)/obj/examples/%.o: KF_CFLAGS += -fPIE

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -no-pie,$(KF_LDFLAGS)) -pie -o $@ $< $(STATIC_LIB) $(KF_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/examples/%.o $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -no-pie -static,$(KF_LDFLAGS)) -static-pie -o $@ $< $(STATIC_LIB) $(KF_LIBS)

$(BUILD)/obj/tools/kvmfault.o: KF_CFLAGS += -DKVMFAULT_VERSION='"$(VERSION)"'
# The version comes from this file: a new one rebuilds the tool.
$(BUILD)/obj/tools/kvmfault.o: Makefile

$(BUILD)/bin/kvmfault: $(TOOL_OBJS) $(HARNESS_LIB) $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(KF_LDFLAGS) -o $@ $(TOOL_OBJS) $(HARNESS_LIB) $(STATIC_LIB) $(KF_LIBS) -lm

# Every test; ends with one line "N passed, N failed, N skipped".
check:
	@scripts/check.sh

run: deps all
	@scripts/run.sh

deps:
	@scripts/deps.sh

install: lib
	install -d $(DESTDIR)$(PREFIX)/include/kvmfault/$(ARCH) \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(PREFIX)/include/kvmfault/
	install -m 644 include/kvmfault/$(ARCH)/*.h $(DESTDIR)$(PREFIX)/include/kvmfault/$(ARCH)/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(PREFIX)/lib/libkvmfault.so.$(VERSION)
	ln -sf libkvmfault.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libkvmfault.so.$(SOVERSION)
	ln -sf libkvmfault.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libkvmfault.so
	$(if $(TOOLS),install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
		kvmfault.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/kvmfault.pc

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
