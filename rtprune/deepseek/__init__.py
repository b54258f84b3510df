"""DeepSeek-OCR's own rules that both engines share, with neither transformers nor vLLM: v1 preprocessing,
resolution modes and visual-token layout, and the repetition (loop) rule."""
