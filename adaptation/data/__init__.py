"""Training data of both stages, from files on disk to the batches the training loop takes.

Adaptation (EBAE/EBAR): ``sources`` reads raw text, ``chunking`` cuts it into the release's
examples (``examples``: their format, and a file of them as a dataset). Fine-tuning: ``groups``
reads the query groups. ``collators`` makes the batches of both.
"""
