"""llamacpp_prompts.py — the prompts of lemma's real-model comparisons with llama.cpp
(tools/gen_llamacpp_expected.py, tools/gen_llamacpp_greedy.py): varied text, code, a question,
a translation and one chat-formatted turn."""

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Q: What is 17 multiplied by 23?\nA:",
    "The three primary colors are",
    "Photosynthesis is the process by which",
    "Here is a list of the planets in our solar system:\n1.",
    "Translate to French: 'Good morning, how are you?'\nFrench:",
    "In 1969, Neil Armstrong",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "<|im_start|>user\nWrite a haiku about autumn.<|im_end|>\n<|im_start|>assistant\n",
    "Machine learning is a field of artificial intelligence that",
]
