"""ultra: Chinese ultrasound visual question answering (LLaVA-Ultra style).

仅供研究，非临床诊断 — research use only, not a clinical diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "仅供研究，非临床诊断（research use only, not a clinical diagnosis）"

__all__ = ["RESEARCH_NOTICE", "__version__", "blank_like"]


def __getattr__(name: str):
    # Lazy, so `import ultra` (and the CLI start-up) does not pull in torch.
    if name == "blank_like":
        from ultra.inference import blank_like

        return blank_like
    raise AttributeError(f"module 'ultra' has no attribute {name!r}")
