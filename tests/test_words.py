from veil.words import counted


def test_counted_says_one_and_many():
    assert counted(1, "face") == "1 face"
    assert counted(0, "face") == "0 faces"
    assert counted(2500, "frame") == "2,500 frames"
    assert counted(3, "box", "boxes") == "3 boxes"
    assert counted(None, "face") == "? faces"
