"""Rebuild the sample calls in this folder (synthetic support calls, agent on channel 0,
customer on channel 1) with Debian's espeak-ng and ffmpeg:

    python samples/make_samples.py

The dialogue texts below are this project's own (Apache-2.0). espeak-ng renders them; the
audio carries no third-party content.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 16000
VOICES = {"agent": ("en-us", "150"), "customer": ("en-gb", "160")}

CALLS = {
    "billing-double-charge": [
        ("agent", "Thank you for calling Northwind support. My name is Sam. How can I help you today?"),
        ("customer", "Hi. I was charged twice for my subscription this month, and I am really frustrated."),
        ("agent", "I am sorry to hear that. Let me look at your account."),
        ("customer", "This is the second time this has happened. It is ridiculous."),
        ("agent", "I can see the duplicate charge. I have refunded it now, and you will see it within three days."),
        ("customer", "Oh, great. Thank you so much, that is a relief."),
        ("agent", "You are welcome. Is there anything else I can help you with?"),
        ("customer", "No, that is all. Have a nice day."),
    ],
    "late-delivery": [
        ("agent", "Good afternoon, this is Alex from Contoso deliveries. What can I do for you?"),
        ("customer", "My package was supposed to arrive last Monday, and it still has not shown up."),
        ("agent", "Can you give me the order number, please?"),
        ("customer", "It is four four two one. I have already called three times about this."),
        ("agent", "I see that the parcel is delayed at the depot. I cannot give you a new date yet."),
        ("customer", "That is terrible service. I am very disappointed and I want to cancel my order."),
        ("agent", "I understand. I will open a cancellation request for you right away."),
        ("customer", "Fine. Just make sure I get my money back."),
    ],
    "router-setup": [
        ("agent", "Hello, you have reached Fabrikam technical support. How may I help?"),
        ("customer", "Hi there. I just bought your new router and I love how fast it is."),
        ("customer", "I only need help setting up the guest network."),
        ("agent", "Of course. Open the settings page and choose wireless, then guest network."),
        ("customer", "Okay, I found it. That was easy."),
        ("agent", "Great. Pick a name and a password, and press save."),
        ("customer", "It works perfectly. Thanks a lot for your help."),
        ("agent", "My pleasure. Enjoy your new router."),
    ],
}


def speak(text: str, voice: str, speed: str, tmp: Path) -> np.ndarray:
    out = tmp / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-w", str(out), text], check=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2")


def render(turns, tmp: Path) -> np.ndarray:
    rng = np.random.default_rng(7)
    parts = []
    t = int(0.5 * RATE)
    for speaker, text in turns:
        voice, speed = VOICES[speaker]
        pcm = speak(text, voice, speed, tmp)
        parts.append((0 if speaker == "agent" else 1, t, pcm))
        t += pcm.size + int(rng.uniform(0.6, 1.1) * RATE)
    stereo = np.zeros((2, t + RATE // 2), dtype=np.int16)
    for ch, start, pcm in parts:
        stereo[ch, start:start + pcm.size] = pcm
    return stereo


def main(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, turns in CALLS.items():
            stereo = render(turns, tmp)
            wav = tmp / f"{name}.wav"
            with wave.open(str(wav), "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(stereo.T.copy().tobytes())
            mp3 = out_dir / f"{name}.mp3"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-codec:a", "libmp3lame", "-b:a", "48k", str(mp3)], check=True)
            print(f"wrote {mp3} ({stereo.shape[1] / RATE:.1f} s, {mp3.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
