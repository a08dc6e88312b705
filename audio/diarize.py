"""Two-speaker diarization of a mono call: who speaks when, from the audio alone.

Nothing here is trained elsewhere: besides the Silero VAD model (audio/vad.py) every number is
computed from the call itself, with numpy.

1. Speech: Silero probabilities, once; the utterances come from the same endpointer as any
   channel's (so the utterances are those of the call without diarization, some of them cut).
2. Features: 19 MFCCs (c1..c19 of 40 log-mel bands) every 10 ms, the call's mean removed.
3. Windows: `window_s` of audio every `hop_s` inside each utterance; a window's embedding is the
   mean and standard deviation of its speech frames' MFCCs, z-scored over the call; spectral
   clustering of their cosine affinities (the Fiedler vector), refined by 2-means, gives two
   groups, and every speech frame the group its covering windows vote for.
4. Cuts: runs shorter than `min_turn_s` go to their neighbours, each change moves to the
   quietest VAD frame within `snap_s` (a pause where there is one), and an utterance is cut
   there; a cut stays only where BIC (diagonal Gaussians, lambda `bic_penalty`) prefers two
   voices for the pieces on its two sides.
5. Speakers: the turns (utterances and their pieces) are clustered again as wholes, which
   hold more speech than a window, so their statistics depend less on what is said.

Speaker 0 is whoever speaks first (on a support line, the agent who answers). Deterministic:
no random initialisation anywhere. Not handled: overlapping speech (each moment is one speaker's)
and more than two voices; a recording of one voice is split into two speakers too (no test
for one voice was reliable on the project's calls), unless too little speech is found.
The options were tuned on the project's own calls (`bench/bench_diarization.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callsense.audio.vad import (
    FRAME as VAD_FRAME, RATE, EndpointerOptions, SileroModel, Span, SpeechProbabilityStream, spans_of_probabilities,
)

HOP = 160  # feature frame step: 10 ms
WIN = 400  # feature frame length: 25 ms
NFFT = 512
N_MELS = 40
N_MFCC = 20  # c0 (loudness) is dropped: 19 coefficients are used


@dataclass(frozen=True)
class DiarizerOptions:
    window_s: float = 1.5  # audio per embedding window
    hop_s: float = 0.75  # step between windows
    min_window_speech_s: float = 0.5  # windows with less speech are assigned, not clustered
    min_turn_s: float = 1.0  # a speaker run inside an utterance shorter than this goes to its neighbours
    snap_s: float = 0.4  # a change point moves to the quietest VAD frame this close
    bic_penalty: float = 2.0  # BIC's lambda for keeping a cut inside an utterance (0: keep every cut)
    min_turn_speech_s: float = 1.0  # turns with less speech are assigned to a speaker, not clustered
    max_cluster_windows: int = 800  # more windows (or turns): spectral clustering runs on an even subsample


@dataclass(frozen=True)
class SpeakerSpan:
    start: int  # samples at 16 kHz
    end: int
    speaker: int


@dataclass(frozen=True)
class Diarization:
    speakers: int  # 2, or 1 when too little speech was found to tell two voices apart
    spans: list[SpeakerSpan]  # the utterances in time order, each of one speaker

    def spans_of(self, speaker: int) -> list[Span]:
        return [Span(s.start, s.end) for s in self.spans if s.speaker == speaker]


# ---- features ---------------------------------------------------------------------------

def _mel_filterbank(n_mels: int = N_MELS, nfft: int = NFFT, rate: int = RATE, fmin: float = 60.0,
                    fmax: float = 7600.0) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, rate / 2, nfft // 2 + 1)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb


def _dct_matrix(n_out: int = N_MFCC, n_in: int = N_MELS) -> np.ndarray:
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


_FB = _mel_filterbank()
_DCT = _dct_matrix()
_WINDOW = np.hamming(WIN)


def mfcc_frames(audio: np.ndarray, block: int = 4096) -> np.ndarray:
    """(frames, 19) MFCCs c1..c19 of 16 kHz audio (pre-emphasis 0.97, Hamming), one frame every
    10 ms (frame i starts at sample 160 i); `block` frames at a time, so memory stays small."""
    audio = np.asarray(audio)
    if audio.size < WIN:
        return np.zeros((0, N_MFCC - 1))
    n = 1 + (audio.size - WIN) // HOP
    out = np.empty((n, N_MFCC - 1))
    for i in range(0, n, block):
        first = i * HOP
        x = audio[first:min(audio.size, (min(n, i + block) - 1) * HOP + WIN)].astype(np.float64)
        previous = float(audio[first - 1]) if first else float(audio[0])
        x = x - 0.97 * np.concatenate([[previous], x[:-1]])
        frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP]
        power = np.abs(np.fft.rfft(frames * _WINDOW, NFFT)) ** 2
        out[i:i + frames.shape[0]] = (np.log(power @ _FB.T + 1e-10) @ _DCT.T)[:, 1:]
    return out


# ---- windows and clustering -------------------------------------------------------------

def _windows(spans: list[Span], n_frames: int, win: int, hop: int) -> list[tuple[int, int]]:
    """(first frame, end frame) of every window, in time order, covering every utterance."""
    out = []
    for sp in spans:
        lo, hi = sp.start // HOP, min(sp.end // HOP, n_frames)
        if hi <= lo:
            continue
        if hi - lo <= win:
            out.append((lo, hi))
            continue
        starts = list(range(lo, hi - win + 1, hop))
        if starts[-1] + win < hi:
            starts.append(hi - win)
        out.extend((s, s + win) for s in starts)
    return out


def _two_means(z: np.ndarray, labels: np.ndarray, iterations: int = 20) -> np.ndarray:
    for _ in range(iterations):
        if labels.min() == labels.max():
            break
        centres = np.stack([z[labels == k].mean(axis=0) for k in (0, 1)])
        new = np.argmin(((z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _nearest(z: np.ndarray, labels: np.ndarray, of: np.ndarray) -> np.ndarray:
    """Labels of the rows of z by the nearer of the two group centres of `of` (labelled `labels`)."""
    if labels.min() == labels.max():
        return np.full(len(z), labels[0])
    centres = np.stack([of[labels == k].mean(axis=0) for k in (0, 1)])
    return np.argmin(((z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)


def _spectral_two(z: np.ndarray) -> np.ndarray:
    """Two groups of the rows of z: sign split of the Fiedler vector of the normalised
    Laplacian of the cosine affinities, then 2-means on z."""
    unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)
    affinity = (1.0 + unit @ unit.T) / 2.0
    d = affinity.sum(axis=1)
    inv = 1.0 / np.sqrt(d)
    laplacian = np.eye(len(z)) - inv[:, None] * affinity * inv[None, :]
    _, vectors = np.linalg.eigh(laplacian)
    fiedler = vectors[:, 1] * inv
    if fiedler[np.argmax(np.abs(fiedler))] < 0:  # eigenvector sign is arbitrary: fix it
        fiedler = -fiedler
    order = np.sort(fiedler)
    # The split of the sorted values with the smallest within-group variance (1-D 2-means).
    best, cut = np.inf, 0.0
    for i in range(1, len(order)):
        cost = order[:i].var() * i + order[i:].var() * (len(order) - i)
        if cost < best:
            best, cut = cost, (order[i - 1] + order[i]) / 2
    return _two_means(z, (fiedler > cut).astype(int))


# ---- turns ------------------------------------------------------------------------------

def _smooth_runs(labels: np.ndarray, min_len: int) -> np.ndarray:
    """Give every run shorter than min_len (shortest first) to the longer of its neighbours."""
    labels = labels.copy()
    while True:
        change = np.flatnonzero(np.diff(labels)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [labels.size]])
        if starts.size < 2:
            return labels
        lengths = ends - starts
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            return labels
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < lengths.size else -1
        neighbour = i - 1 if left >= right else i + 1
        labels[starts[i]:ends[i]] = labels[starts[neighbour]]


def _cut_span(sp: Span, frame_labels: np.ndarray, probs: np.ndarray, opts: DiarizerOptions) -> list[SpeakerSpan]:
    lo = sp.start // HOP
    labels = frame_labels[lo:lo + max(1, (sp.end - sp.start) // HOP)]
    if labels.size == 0:
        return [SpeakerSpan(sp.start, sp.end, int(frame_labels[min(lo, frame_labels.size - 1)]))]
    labels = _smooth_runs(labels, int(opts.min_turn_s * RATE / HOP))
    changes = np.flatnonzero(np.diff(labels)) + 1
    cuts = [sp.start]
    snap = int(opts.snap_s * RATE)
    for c in changes:
        at = sp.start + int(c) * HOP
        # The quietest VAD frame near the change (a pause where there is one), inside the span.
        first = max((at - snap) // VAD_FRAME, (cuts[-1] + VAD_FRAME) // VAD_FRAME)
        last = min((at + snap) // VAD_FRAME, (sp.end - VAD_FRAME) // VAD_FRAME)
        if last >= first and last < probs.size:
            k = first + int(np.argmin(probs[first:last + 1]))
            at = k * VAD_FRAME + VAD_FRAME // 2
        if cuts[-1] < at < sp.end:
            cuts.append(at)
    cuts.append(sp.end)
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        mid = min((a + b) // 2 // HOP, frame_labels.size - 1)
        seg = frame_labels[max(a // HOP, 0):max(b // HOP, a // HOP + 1)]
        speaker = int(np.round(seg.mean())) if seg.size else int(frame_labels[mid])
        if out and out[-1].speaker == speaker:
            out[-1] = SpeakerSpan(out[-1].start, b, speaker)
        else:
            out.append(SpeakerSpan(a, b, speaker))
    return out


def _delta_bic(x: np.ndarray, y: np.ndarray, penalty: float) -> float:
    """BIC of two diagonal Gaussians (x, y) against one (x and y together): > 0 says two voices."""
    xy = np.concatenate([x, y])

    def cost(a):
        return 0.5 * a.shape[0] * np.log(a.var(axis=0) + 1e-9).sum()

    return cost(xy) - cost(x) - cost(y) - penalty * 0.5 * 2 * xy.shape[1] * np.log(xy.shape[0])


def _join_alike_neighbours(turns: list[SpeakerSpan], feats: np.ndarray, speech: np.ndarray, penalty: float) -> list[SpeakerSpan]:
    """Join the two pieces of an utterance on either side of a cut when BIC prefers one voice
    for them (the least different pair first, until every cut left is supported)."""
    turns = list(turns)

    def frames(t):
        return feats[t.start // HOP:t.end // HOP][speech[t.start // HOP:t.end // HOP]]

    def score(i):  # of the cut between turns i and i + 1; None: no cut there (a pause)
        if turns[i].end != turns[i + 1].start:
            return None
        x, y = frames(turns[i]), frames(turns[i + 1])
        return _delta_bic(x, y, penalty) if min(x.shape[0], y.shape[0]) >= 2 else -np.inf

    scores = [score(i) for i in range(len(turns) - 1)]
    while True:
        candidates = [(v, i) for i, v in enumerate(scores) if v is not None and v < 0]
        if not candidates:
            return turns
        _, at = min(candidates)
        a, b = turns[at], turns[at + 1]
        keep = a.speaker if a.end - a.start >= b.end - b.start else b.speaker
        turns[at:at + 2] = [SpeakerSpan(a.start, b.end, keep)]
        del scores[at]
        for i in (at - 1, at):
            if 0 <= i < len(scores):
                scores[i] = score(i)


def _cluster_turns(turns: list[SpeakerSpan], feats: np.ndarray, speech: np.ndarray, opts: DiarizerOptions) -> list[SpeakerSpan]:
    """The speakers again, now of whole turns (the utterances cut where the windows' speaker
    changes): a turn holds more speech than a window, so its statistics depend less on what is
    said. Spectral clustering of the turns with at least `min_turn_speech_s` of speech, 2-means
    weighted by speech, the other turns to the nearer centre; neighbours in one utterance that
    end up with the same speaker are joined again. Unchanged when fewer than 4 turns are long enough."""
    stats, weight = [], []
    for t in turns:
        f = feats[t.start // HOP:t.end // HOP][speech[t.start // HOP:t.end // HOP]]
        weight.append(f.shape[0])
        stats.append(np.concatenate([f.mean(axis=0), f.std(axis=0)]) if f.shape[0] >= 2 else np.zeros(2 * (N_MFCC - 1)))
    w = np.array(weight, float)
    long = np.flatnonzero(w >= opts.min_turn_speech_s * RATE / HOP)
    if long.size < 4:
        return turns
    e = np.stack(stats)
    z = (e - e[long].mean(axis=0)) / (e[long].std(axis=0) + 1e-9)
    sample = z[long][::max(1, int(np.ceil(long.size / opts.max_cluster_windows)))]
    labels = _nearest(z[long], _spectral_two(sample), sample)
    for _ in range(20):
        if labels.min() == labels.max():
            return turns
        centres = np.stack([(z[long][labels == k] * w[long][labels == k, None]).sum(axis=0) / w[long][labels == k].sum()
                            for k in (0, 1)])
        new = np.argmin(((z[long][:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    every = np.argmin(((z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    every[long] = labels
    every = np.where(w >= 2, every, [t.speaker for t in turns])
    out: list[SpeakerSpan] = []
    for t, k in zip(turns, every):
        if out and out[-1].speaker == k and out[-1].end == t.start:
            out[-1] = SpeakerSpan(out[-1].start, t.end, int(k))
        else:
            out.append(SpeakerSpan(t.start, t.end, int(k)))
    return out


# ---- the diarizer -----------------------------------------------------------------------

def _window_labels(spans: list[Span], feats: np.ndarray, speech: np.ndarray, opts: DiarizerOptions) -> np.ndarray | None:
    """Frame labels from spectral clustering of `window_s` windows (None: too few windows)."""
    win, hop = int(opts.window_s * RATE / HOP), int(opts.hop_s * RATE / HOP)
    windows = _windows(spans, feats.shape[0], win, hop)
    emb, voiced = [], []
    for a, b in windows:
        f = feats[a:b][speech[a:b]]
        voiced.append(f.shape[0])
        emb.append(np.concatenate([f.mean(axis=0), f.std(axis=0)]) if f.shape[0] >= 2 else None)
    voiced = np.array(voiced)
    reliable = np.flatnonzero(voiced >= opts.min_window_speech_s * RATE / HOP)
    if reliable.size < 4:
        return None
    usable = np.array([e is not None for e in emb])
    e_all = np.stack([e if e is not None else np.zeros(2 * (N_MFCC - 1)) for e in emb])
    z_all = (e_all - e_all[reliable].mean(axis=0)) / (e_all[reliable].std(axis=0) + 1e-9)
    step = max(1, int(np.ceil(reliable.size / opts.max_cluster_windows)))
    sample = reliable[::step]
    labels = _spectral_two(z_all[sample])
    if labels.min() == labels.max():
        return None
    centres = np.stack([z_all[sample][labels == k].mean(axis=0) for k in (0, 1)])
    dist = np.sqrt(((z_all[:, None, :] - centres[None]) ** 2).sum(-1))
    score = np.where(usable, dist[:, 0] - dist[:, 1], 0.0)  # > 0: speaker 1
    # Frame votes: each window adds its score to the frames it covers (weighted by its speech).
    vote = np.zeros(feats.shape[0])
    for (a, b), sc, v in zip(windows, score, voiced):
        vote[a:b] += np.clip(sc, -3.0, 3.0) * min(1.0, v / max(win, 1))
    return (vote > 0).astype(int)


def diarize(audio: np.ndarray, vad: SileroModel, endpointer: EndpointerOptions = EndpointerOptions(),
            opts: DiarizerOptions = DiarizerOptions()) -> Diarization:
    """The utterances of a mono 16 kHz call, each given to one of (at most) two speakers."""
    probs = SpeechProbabilityStream(vad).push(audio)
    spans = spans_of_probabilities(probs, audio.size, endpointer)
    one_voice = Diarization(1, [SpeakerSpan(s.start, s.end, 0) for s in spans])
    feats = mfcc_frames(audio)
    if not spans or feats.shape[0] == 0:
        return one_voice
    # Speech frames (10 ms) by the Silero frame (32 ms) their centre falls in.
    centre = np.arange(feats.shape[0]) * HOP + WIN // 2
    speech = np.zeros(feats.shape[0], bool)
    known = centre // VAD_FRAME < probs.size
    speech[known] = probs[centre[known] // VAD_FRAME] >= endpointer.threshold
    if speech.sum() < 10:
        return one_voice
    feats = feats - feats[speech].mean(axis=0)

    frame_labels = _window_labels(spans, feats, speech, opts)
    if frame_labels is None:
        return one_voice
    turns = [t for sp in spans for t in _cut_span(sp, frame_labels, probs, opts)]
    if opts.bic_penalty > 0:
        turns = _join_alike_neighbours(turns, feats, speech, opts.bic_penalty)
    turns = _cluster_turns(turns, feats, speech, opts)
    if len({t.speaker for t in turns}) < 2:
        return one_voice
    if turns[0].speaker == 1:
        turns = [SpeakerSpan(t.start, t.end, 1 - t.speaker) for t in turns]
    return Diarization(2, turns)
