"""Tests of the llamacpp backend, most of them against the real SmolLM2-135M-Instruct model."""
