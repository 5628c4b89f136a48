"""Chat wire protocols, one module per protocol: OpenAI-compatible chat completions (OpenRouter, OpenAI,
Ollama, vLLM, llama.cpp, LM Studio), Anthropic Messages, Gemini generateContent, and the local model
(``local/``, llama.cpp in a worker process).
"""
