"""The Gemini API (Batch Mode + Files API) as the emulator serves it."""
