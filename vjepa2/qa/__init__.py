"""Video question answering through a language model: frozen V-JEPA 2 tokens -> pooler -> projector -> causal LM.

- :mod:`vjepa2.qa.synthetic`: a synthetic video-QA benchmark with known answers (balanced per question type).
- :mod:`vjepa2.qa.tokenizer`: a word-level tokenizer for LMs initialised from a config.
- :mod:`vjepa2.qa.model`: poolers, projector and the model that puts visual tokens before the question.
- :mod:`vjepa2.qa.train`: the two training stages; :mod:`vjepa2.qa.evaluate`: accuracy per question type.
- :mod:`vjepa2.qa.run`: run folders (config, tokenizer, checkpoint); :mod:`vjepa2.qa.features`: cached features.

Needs ``transformers`` (an optional dependency); LoRA needs ``peft``.
"""
