"""Audio in and out: decoding, resampling, G.711, PCM/WAV helpers and voice activity.
Used by the pipeline, the engines, the assistant, the dashboard and riva-serve; imports
only callsense.core."""
