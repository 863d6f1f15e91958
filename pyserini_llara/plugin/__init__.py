"""Where pyserini-llara lives in Pyserini's house: everything that touches Pyserini itself.

``hook`` (installed at interpreter start by ``pyserini_llara_hook.pth``) watches a few imports and
hands them on: ``java`` prepares the JVM, ``patches`` opens the doors of Pyserini's modules,
``clis`` those of its command lines; ``encoders`` are the Pyserini ``QueryEncoder`` /
``DocumentEncoder`` that the doors lead to, and ``checks`` stop a search that can only be wrong.

Kept import-free, as the hook's package: it is imported at every interpreter start.
"""
