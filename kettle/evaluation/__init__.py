"""Retrieval evaluation on the user's own data (``python -m kettle eval``): a BEIR-format reader
(``data``), BEIR/pytrec_eval's metrics (``metrics``), one model's run (``run``) and what is
written (``report``)."""
