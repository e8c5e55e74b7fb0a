# aio-aws: build, test and check the C core and the Lua modules.
# `make test` and `make demo` are the two set-up commands of the README.

LUA        ?= lua5.4
BUSTED     ?= $(LUA) /usr/bin/busted
PKG_CONFIG ?= pkg-config
LUA_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
CC         ?= cc
OPT        ?= -O2 -g
WARN        = -Wall -Wextra -Werror
CFLAGS_ALL  = $(WARN) $(OPT) -std=gnu11 -fPIC -fvisibility=hidden $(LUA_CFLAGS)
LIBS        = -lcurl -lev -lcrypto -lexpat -lhttp_parser

SRCS   = $(wildcard csrc/*.c)
HDRS   = $(wildcard csrc/*.h)
CORE   = lua/aio_aws/core.so

# Debian packages the project needs (build, run time, tests). `make deps`
# installs whichever are missing and runs apt-get update only then.
DEBS = build-essential pkg-config lua5.4 liblua5.4-dev lua-cjson lua-yaml lua-filesystem \
       lua-argparse lua-busted lua-check luarocks libev-dev \
       libcurl4-openssl-dev libssl-dev libexpat1-dev libhiredis-dev \
       libhttp-parser-dev nginx-light redis-server python3-boto3 openssl \
       curl valgrind

SPEC_ARGS ?=
BUSTED_RUN = $(BUSTED) -o spec/support/summary_output.lua $(SPEC_ARGS)

.PHONY: all deps test check check-asan check-valgrind lint bench models rockspec clean

all: $(CORE)

$(CORE): $(SRCS) $(HDRS)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $(SRCS) $(LIBS)

# nodejs/npm (Debian's) only when the node or npm command is missing: a
# NodeSource nodejs ships npm and conflicts with Debian's npm package.
deps:
	@sh tools/deps.sh $(DEBS)
	@sh tools/npm-deps.sh nodejs npm

lint:
	@if command -v luacheck >/dev/null; then luacheck -q lua spec bench examples; fi

test: deps all lint
	$(BUSTED_RUN)

# Sanitizers: the core is rebuilt into build/asan and loaded ahead of the
# normal one; lua5.4 itself is not instrumented, so libasan is preloaded.
# Leak checking is valgrind's job below (the interpreter exits without
# freeing everything, which LeakSanitizer would report).
ASAN_DIR = build/asan
ASAN_CORE = $(ASAN_DIR)/aio_aws/core.so
$(ASAN_CORE): $(SRCS) $(HDRS)
	@mkdir -p $(ASAN_DIR)/aio_aws
	$(CC) $(WARN) -O1 -g -std=gnu11 -fPIC $(LUA_CFLAGS) \
	  -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -fno-omit-frame-pointer -shared -o $@ $(SRCS) $(LIBS)

ASAN_ENV = LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 AIO_AWS_SANITIZED=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 AIO_AWS_CPATH="$(ASAN_DIR)/?.so"

GC_STRESS_SPECS ?= spec/core spec/xml_spec.lua spec/server_spec.lua spec/process_spec.lua
# Every spec under ASan/UBSan, then the C-heavy ones again with the garbage
# collector running constantly (an object the core forgot to anchor is then
# freed while in use, and ASan reports it).
check-asan: deps $(ASAN_CORE)
	$(ASAN_ENV) $(BUSTED_RUN)
	$(ASAN_ENV) AIO_AWS_GC_STRESS=1 $(BUSTED_RUN) $(GC_STRESS_SPECS)

# The C-heavy specs under valgrind memcheck, against the normal build.
VALGRIND_SPECS ?= spec/core spec/crypto_spec.lua spec/sigv4_spec.lua spec/xml_spec.lua spec/server_spec.lua spec/process_spec.lua
check-valgrind: deps all
	AIO_AWS_SANITIZED=1 valgrind -q --keep-debuginfo=yes --leak-check=full --errors-for-leak-kinds=definite \
	  --error-exitcode=1 --suppressions=spec/support/valgrind.supp \
	  --trace-children=no $(BUSTED_RUN) $(VALGRIND_SPECS)

check: check-asan check-valgrind

# Side-by-side benchmarks against peer clients (not tests; see bench/README.md).
bench: deps all
	sh bench/run

# Regenerate the bundled compact models from botocore-format data
# (BOTOCORE_DATA, default: Debian's python3-botocore). The build never needs it.
BOTOCORE_DATA ?= /usr/lib/python3/dist-packages/botocore/data
models:
	$(LUA) tools/gen-models $(BOTOCORE_DATA) lua/aio_aws/models

# The rockspec lists every source; regenerate it after adding files.
rockspec:
	$(LUA) tools/gen-rockspec > aio-aws-scm-1.rockspec

clean:
	rm -rf build $(CORE)
