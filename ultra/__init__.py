"""ultra: Chinese ultrasound visual question answering (LLaVA-Ultra style).

仅供研究，非临床诊断 — research use only, not a clinical diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "仅供研究，非临床诊断（research use only, not a clinical diagnosis）"

_FRONT_DOOR = (
    "DEFAULT_MODEL",
    "Answer",
    "Answerer",
    "Choice",
    "GenerationSettings",
    "Likelihood",
    "PromptTooLongError",
    "Request",
    "Turn",
    "UntrainedModelError",
    "blank_like",
)

__all__ = ["RESEARCH_NOTICE", "__version__", *_FRONT_DOOR]


def __getattr__(name: str):
    # Lazy, so `import ultra` (and the CLI start-up) does not pull in torch.
    if name in _FRONT_DOOR:
        import ultra.answerer

        return getattr(ultra.answerer, name)
    raise AttributeError(f"module 'ultra' has no attribute {name!r}")
