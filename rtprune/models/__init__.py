"""Model adapters: one per DeepSeek-OCR generation. Imported lazily; they pull in transformers."""
