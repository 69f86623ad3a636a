"""ultra: Chinese ultrasound visual question answering (LLaVA-Ultra style).

仅供研究，非临床诊断 — research use only, not a clinical diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "仅供研究，非临床诊断（research use only, not a clinical diagnosis）"

__all__ = ["RESEARCH_NOTICE", "__version__"]
