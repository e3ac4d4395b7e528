from sparsesync_cli.clock import describe_offset, window_indices


def test_window_indices_follow_the_papers_arithmetic():
    # golden case 2: frames from 4.0 s, audio from 4.0 - 2.0 s
    assert window_indices(4.0, -2.0) == (100, 32_000)
    assert window_indices(0.0, 1.6) == (0, 25_600)
    # the start is not snapped to the frame grid for the audio (reference behaviour)
    assert window_indices(0.03, 0.0) == (0, 480)
    # audio before time zero stays negative: the reader fills it with silence
    assert window_indices(0.0, -2.0) == (0, -32_000)


def test_describe_offset_words_and_sign():
    assert describe_offset(0.4) == "audio 0.40 s early"
    assert describe_offset(-1.2) == "audio 1.20 s late"
    assert describe_offset(0.0) == "in sync"
    assert describe_offset(2.0, at_least=True) == "audio at least 2.00 s early"
