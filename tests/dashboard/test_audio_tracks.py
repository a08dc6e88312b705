"""The Call page's players: one track per stored channel, also for a diarized mono call."""

import numpy as np

from callsense.dashboard.audio import split_channels


def test_a_diarized_mono_call_plays_its_one_track_for_each_speaker(shared_audio):
    data = (shared_audio / "LJ050-0131.wav").read_bytes()  # mono
    (mono,) = split_channels(data, 1)
    agent, customer = split_channels(data, 2)  # stored as two channels (CALLSENSE_DIARIZE_MONO)
    assert np.array_equal(agent, mono) and np.array_equal(customer, mono)

