"""The Gradio web demo of ultra (``ultra demo``): image chat, surgical video chat, all answered by
``ultra.Answerer`` and read by ``ultra.media``. 仅供研究，非临床诊断.

``demo.app`` imports Gradio; import it only after ``GRADIO_TEMP_DIR`` points at the private
upload folder (``ultra demo`` does this), since Gradio reads it once at import.
"""
