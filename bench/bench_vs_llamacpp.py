#!/usr/bin/env python3
"""Prefill and decode speed of lemma and llama.cpp on the same GGUF files, threads and machine,
in one invocation (issue: CPU engine performance). Prints one JSON document.

    python3 -m venv /tmp/xl && /tmp/xl/bin/pip install xllamacpp     # llama.cpp from PyPI
    /tmp/xl/bin/python bench/bench_vs_llamacpp.py [--threads 1,2] [--reps 3] [MODEL.gguf ...]

    # or llama.cpp compiled on this machine (-march=native) by pip from the PyPI sdist:
    python3 -m venv /tmp/lcp && /tmp/lcp/bin/pip install llama-cpp-python==0.3.36
    /tmp/lcp/bin/python bench/bench_vs_llamacpp.py --peer llama-cpp-python [...]

    # or a native llama-bench you built yourself (not part of lemma), e.g. from the llama.cpp
    # sources inside that same sdist (vendor/llama.cpp):
    #   cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON && \
    #   cmake --build build -j --target llama-bench
    python3 bench/bench_vs_llamacpp.py --peer llama-bench --llama-bench PATH/llama-bench [...]

llama-cpp-python: Llama(n_ctx 1024, n_batch = n_ubatch = 512, flash attention off, the given
threads); pp512 = time of eval() of 512 random tokens after reset(); tg128 = 128 single-token
eval() calls after a 1-token prompt (fixed random tokens, no sampling), timed together; the
Python call overhead (~tens of microseconds per call) is included, as lemma's sampling is.

lemma: `build/lemma bench -m MODEL -p 512 -n 128 -t T -r REPS --json` (pp: 512 random tokens in
one session; tg: 128 greedy tokens). llama.cpp: xllamacpp's embedded server (prebuilt CPU wheel)
with the same threads; pp512 = a 512-random-token prompt with n_predict 1 (the server's
prompt_per_second), tg128 = 128 tokens generated after a 1-token prompt with end-of-generation
ignored (predicted_per_second); one warm-up, then the mean of REPS runs. Flash attention off
in llama.cpp (its CPU default "auto" was measured too when --fa-auto is given).
"""
import json
import random
import statistics
import subprocess
import sys

xlc = None  # imported on use: either peer may be the only one installed

MODELS = ["models/smollm2-135m-instruct-q4_1.gguf", "models/gemma-3-270m-q4_k_m.gguf"]


def lemma_bench(model, threads, reps):
    out = subprocess.run(["build/lemma", "bench", "-m", model, "-p", "512", "-n", "128",
                          "-t", str(threads), "-r", str(reps), "--json"],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    return {"pp512": j["pp"]["tps"], "pp512_sd": j["pp"]["stddev"],
            "tg128": j["tg"]["tps"], "tg128_sd": j["tg"]["stddev"]}


def lcp_bench(model, threads, reps):
    import time
    from llama_cpp import Llama
    llm = Llama(model_path=model, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads,
                n_threads_batch=threads, flash_attn=False, verbose=False)
    rng = random.Random(1)
    n_vocab = llm.n_vocab()
    pp, tg = [], []
    for rep in range(reps + 1):
        ids = [rng.randrange(100, n_vocab) for _ in range(512)]
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        llm.reset()
        llm.eval([ids[0]])
        t2 = time.perf_counter()
        for i in range(128):
            llm.eval([ids[1 + i]])
        t3 = time.perf_counter()
        if rep:  # the first repetition is the warm-up
            pp.append(512 / (t1 - t0))
            tg.append(128 / (t3 - t2))
    del llm
    sd = lambda x: statistics.stdev(x) if len(x) > 1 else 0.0
    return {"pp512": statistics.mean(pp), "pp512_sd": sd(pp),
            "tg128": statistics.mean(tg), "tg128_sd": sd(tg)}


def llamacpp_bench(model, threads, reps, fa_auto):
    global xlc
    import xllamacpp
    xlc = xllamacpp
    p = xlc.CommonParams()
    p.model.path = model
    p.n_ctx = 1024
    p.n_batch = 512
    p.n_ubatch = 512
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    if not fa_auto:
        p.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    server = xlc.Server(p)
    rng = random.Random(1)
    n_vocab = 49152 if "smollm" in model else 262144
    pp, tg = [], []
    for rep in range(reps + 1):
        ids = [rng.randrange(100, n_vocab) for _ in range(512)]
        r = server.handle_completions({"prompt": ids, "n_predict": 1, "cache_prompt": False,
                                       "temperature": 0.0})
        t1 = r["timings"]["prompt_per_second"]
        r = server.handle_completions({"prompt": [ids[0]], "n_predict": 128, "cache_prompt": False,
                                       "temperature": 0.0, "ignore_eos": True})
        t2 = r["timings"]["predicted_per_second"]
        if rep:  # the first repetition is the warm-up
            pp.append(t1)
            tg.append(t2)
    del server
    sd = lambda x: statistics.stdev(x) if len(x) > 1 else 0.0
    return {"pp512": statistics.mean(pp), "pp512_sd": sd(pp),
            "tg128": statistics.mean(tg), "tg128_sd": sd(tg)}


def llama_bench_native(binary, model, threads, reps):
    """llama.cpp's own benchmark tool: the same pp512/tg128 definitions as lemma bench
    (random tokens, one warm-up run, then REPS timed runs), flash attention off."""
    out = subprocess.run([binary, "-m", model, "-p", "512", "-n", "128", "-t", str(threads),
                          "-r", str(reps), "-fa", "0", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for r in json.loads(out):
        key = "pp512" if r["n_prompt"] == 512 and r["n_gen"] == 0 else "tg128"
        res[key], res[key + "_sd"] = r["avg_ts"], r["stddev_ts"]
    return res


def main():
    args = sys.argv[1:]
    threads, reps, fa_auto, models, peer, lb = [1, 2], 3, False, [], "xllamacpp", None
    while args:
        a = args.pop(0)
        if a == "--threads": threads = [int(x) for x in args.pop(0).split(",")]
        elif a == "--reps": reps = int(args.pop(0))
        elif a == "--fa-auto": fa_auto = True
        elif a == "--peer": peer = args.pop(0)
        elif a == "--llama-bench": lb = args.pop(0)
        else: models.append(a)
    rows = []
    for model in models or MODELS:
        for t in threads:
            lm = lemma_bench(model, t, reps)
            if peer == "llama-bench":
                lc = llama_bench_native(lb, model, t, reps)
            elif peer == "llama-cpp-python":
                lc = lcp_bench(model, t, reps)
            else:
                lc = llamacpp_bench(model, t, reps, fa_auto)
            rows.append({"model": model.split("/")[-1], "threads": t, "lemma": lm,
                         "llama.cpp": lc,
                         "pp_ratio": round(lm["pp512"] / lc["pp512"], 3),
                         "tg_ratio": round(lm["tg128"] / lc["tg128"], 3)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    if peer == "llama-bench":
        ver = subprocess.run([lb, "--version"], capture_output=True, text=True)
        name = "native llama-bench, " + (ver.stdout + ver.stderr).strip().replace("\n", "; ")
    elif peer == "llama-cpp-python":
        import llama_cpp
        name = "llama-cpp-python " + llama_cpp.__version__ + ", compiled on this machine"
    else:
        name = "xllamacpp " + getattr(xlc, "__version__", "?")
    print(json.dumps({"benchmark": "lemma vs llama.cpp (" + name + ")", "reps": reps,
                      "llama.cpp_flash_attn": "auto" if fa_auto else "off", "results": rows},
                     indent=1))


if __name__ == "__main__":
    main()
