"""Call intake and the stream pipeline: events, decoding, segmentation, transports."""
