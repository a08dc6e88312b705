"""The `riva` ASR engine (nvidia-riva-client) against a real riva-serve: offline and
streaming recognition, word boosting settings, TLS and API keys, and the errors a worker
sees when the server is dead, slow, or lacks the model."""

from __future__ import annotations

import logging
import shutil
import sys
import subprocess

import numpy as np
import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from callsense.asr.base import AsrUnavailable, create_asr_engine  # noqa: E402
from callsense.asr.engines.riva import (  # noqa: E402
    BoostedWord, RivaEngine, RivaUnavailable, boosted_words, parse_boosted_words,
)
from callsense.core.settings import Settings  # noqa: E402
from callsense.core.errors import TransientError  # noqa: E402


@pytest.fixture(scope="module")
def embedded():
    return create_asr_engine(Settings(asr_engine="whisper"))


def dead_url(pick_ports) -> str:
    return f"127.0.0.1:{pick_ports(1)[0]}"  # nothing listens there


def test_offline_transcribe_matches_the_embedded_engine(riva_settings, shared_clip, embedded, normalize):
    engine = create_asr_engine(riva_settings.model_copy(update={"asr_engine": "riva"}))
    assert isinstance(engine, RivaEngine)
    assert engine.model_id == "riva:callsense-whisper-en-US"  # the server's offline model, asked at start-up
    audio, _ = shared_clip("spk1_snt3.wav")
    segments = list(engine.transcribe(audio))
    assert normalize(" ".join(s.text for s in segments)) == normalize(" ".join(s.text for s in embedded.transcribe(audio)))
    words = [w for s in segments for w in s.words]
    assert len(words) == len(normalize(" ".join(s.text for s in segments)).split())
    assert all(0 <= w.start <= w.end <= audio.size / 16000 + 0.3 for w in words)  # seconds, not Riva's milliseconds
    assert words[-1].text.endswith(".")  # punctuation kept on the words: sentences can be split
    assert list(engine.transcribe(np.zeros(0, np.float32))) == []


def test_streaming_yields_interim_then_final(riva_settings, shared_clip, normalize):
    engine = RivaEngine(riva_settings)
    audio, reference = shared_clip("LJ050-0131.wav")
    audio = audio[: 16000 * 3]  # "unless a system is established ..."
    results = list(engine.transcribe_stream((audio[i:i + 1600] for i in range(0, audio.size, 1600)), interim_results=True))
    assert any(not r.is_final for r in results) and results[-1].is_final
    finals = [r for r in results if r.is_final]
    assert normalize(" ".join(r.text for r in finals)).startswith("unless a system is established")
    assert all(r.words and r.words[0].start >= 0 for r in finals)


def test_boosted_words_from_setting_and_file(tmp_path):
    assert parse_boosted_words("Northwind:20, Contoso : 35,Fabrikam", 10) == [
        BoostedWord("Northwind", 20), BoostedWord("Contoso", 35), BoostedWord("Fabrikam", 10)]
    words_file = tmp_path / "boost.txt"
    words_file.write_text("# business terms\nTailspin Toys:50\nWoodgrove  # bank\n\n")
    words = boosted_words(Settings(riva_boosted_words="Contoso:30", riva_boosted_words_file=words_file, riva_default_boost=25))
    assert words == [BoostedWord("Contoso", 30), BoostedWord("Tailspin Toys", 50), BoostedWord("Woodgrove", 25)]
    with pytest.raises(AsrUnavailable, match="'Contoso:lots'.*must be a number"):
        parse_boosted_words("Contoso:lots", 20)
    with pytest.raises(AsrUnavailable, match="cannot read the boosted words file"):
        boosted_words(Settings(riva_boosted_words_file=tmp_path / "missing.txt"))


def test_dead_server_is_transient_with_url_and_model_after_retries(pick_ports, shared_clip, caplog):
    url = dead_url(pick_ports)
    settings = Settings(riva_url=url, riva_retries=2, riva_retry_backoff_s=0.05, riva_asr_model="conformer-en-US")
    engine = RivaEngine(settings)  # a server not up yet does not stop a worker from starting
    audio, _ = shared_clip("spk2_snt2.wav")
    with caplog.at_level(logging.WARNING), pytest.raises(RivaUnavailable) as info:
        list(engine.transcribe(audio))
    # Two retries, each announced with its backoff, which doubles: 0.05 s, then 0.1 s.
    retries = [r for r in caplog.records if "retry" in r.getMessage() and url in r.getMessage()]
    assert [r.args[-3:-1] for r in retries] == [(1, 2), (2, 2)], [r.getMessage() for r in retries]
    assert [r.args[-1] for r in retries] == pytest.approx([0.05, 0.1])
    message = str(info.value)
    assert url in message and "conformer-en-US" in message and "after 3 tries" in message and "UNAVAILABLE" in message
    assert "\n" not in message
    assert isinstance(info.value, TransientError) and isinstance(info.value, AsrUnavailable)
    with pytest.raises(RivaUnavailable, match=url):
        list(engine.transcribe_stream([audio[:1600]]))


def test_missing_model_is_a_permanent_clear_error(riva_settings, riva_url, shared_clip):
    with pytest.raises(AsrUnavailable, match=f"Riva ASR at {riva_url} has no model 'parakeet-1.1b'.*callsense-whisper-en-US"):
        RivaEngine(riva_settings.model_copy(update={"riva_asr_model": "parakeet-1.1b"}))
    # Checked again on each call when the start-up check is skipped: refused, not retried.
    engine = RivaEngine(riva_settings.model_copy(update={"riva_asr_model": "parakeet-1.1b"}), check_model=False)
    audio, _ = shared_clip("spk2_snt2.wav")
    with pytest.raises(AsrUnavailable, match="does not serve the requested model.*parakeet-1.1b") as info:
        list(engine.transcribe(audio))
    assert not isinstance(info.value, TransientError)
    with pytest.raises(AsrUnavailable, match="no offline model for language fr-FR"):
        RivaEngine(riva_settings.model_copy(update={"riva_language": "fr-FR"}))


def test_timeout_is_retried_then_reported(riva_settings, riva_url, shared_clip):
    engine = RivaEngine(riva_settings.model_copy(update={"riva_timeout_s": 0.001, "riva_retries": 1}))
    audio, _ = shared_clip("spk1_snt1.wav")
    with pytest.raises(RivaUnavailable, match=f"{riva_url}.*after 2 tries: DEADLINE_EXCEEDED"):
        list(engine.transcribe(audio))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_and_api_key(tls_files, shared_clip, normalize):
    from callsense.serve.riva.server import RivaServer, TlsFiles

    cert, key = tls_files
    server = RivaServer(Settings(riva_serve_asr_engine="whisper"), host="127.0.0.1", port=0, workers=4, tls=TlsFiles(cert, key), api_key="s3cret").start()
    try:
        url = f"localhost:{server.port}"
        base = Settings(riva_url=url, riva_retries=0, riva_timeout_s=60)
        audio, reference = shared_clip("spk2_snt2.wav")
        good = RivaEngine(base.model_copy(update={"riva_ssl_cert": cert, "riva_api_key": "s3cret"}))
        assert normalize(" ".join(s.text for s in good.transcribe(audio))).startswith(normalize(reference))
        wrong_key = RivaEngine(base.model_copy(update={"riva_ssl_cert": cert, "riva_api_key": "guess"}), check_model=False)
        with pytest.raises(AsrUnavailable, match="refused the credentials: UNAUTHENTICATED") as info:
            list(wrong_key.transcribe(audio))
        assert not isinstance(info.value, TransientError)
        plaintext = RivaEngine(base, check_model=False)
        with pytest.raises(RivaUnavailable, match=url):
            list(plaintext.transcribe(audio))
        with pytest.raises(AsrUnavailable, match="RIVA_SSL_CERT points to"):
            RivaEngine(base.model_copy(update={"riva_ssl_cert": cert.parent / "nope.pem"}))
    finally:
        server.stop()


def test_without_the_riva_client_the_error_names_the_extra():
    """In a fresh interpreter where `riva` cannot be imported (as without the extra)."""
    code = (
        "import sys; sys.modules['riva'] = None\n"
        "from callsense.core.settings import Settings\n"
        "from callsense.asr.base import AsrUnavailable, create_asr_engine\n"
        "from callsense.asr.tts.base import TtsUnavailable, create_tts_engine\n"
        "from callsense.serve.riva.server import RivaServer, RivaServeError\n"
        "for make, err in ((lambda: create_asr_engine(Settings(asr_engine='riva')), AsrUnavailable),\n"
        "                  (lambda: create_tts_engine(Settings(tts_engine='riva')), TtsUnavailable),\n"
        "                  (lambda: RivaServer(Settings(), port=0).start(), RivaServeError)):\n"
        "    try:\n"
        "        make()\n"
        "    except err as e:\n"
        "        print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 3, done.stderr
    assert all("pip install callsense[riva]" in line for line in lines), lines


def test_streaming_telephony_mulaw_chunks(riva_settings, shared_clip, normalize):
    """Live calls often arrive as 8 kHz G.711: the chunks go to Riva as they are."""
    from callsense.audio.g711 import encode_mulaw
    from callsense.audio.pcm import float_to_int16
    from callsense.audio.resample import resample

    audio, reference = shared_clip("spk1_snt3.wav")
    mulaw = encode_mulaw(float_to_int16(resample(audio, 16000, 8000)))
    results = RivaEngine(riva_settings).transcribe_stream((mulaw[i:i + 800] for i in range(0, len(mulaw), 800)),
                                                          sample_rate=8000, encoding="mulaw", interim_results=False)
    assert normalize(" ".join(r.text for r in results if r.is_final)) == normalize(reference)
    with pytest.raises(AsrUnavailable, match="unsupported stream encoding 'opus'"):
        list(RivaEngine(riva_settings).transcribe_stream([b""], encoding="opus"))
