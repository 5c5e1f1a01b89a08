"""A folder given to ``trainwell predict``: flat or class subfolders, and what is refused."""

from __future__ import annotations

import pytest

from trainwell.data.images import list_images_for_prediction
from trainwell.errors import DataError


def test_predicting_on_a_folder_without_images_says_so_not_to_make_class_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"has no images to predict on \(looked for \.png"):
        list_images_for_prediction(tmp_path)
    (tmp_path / "a").mkdir()  # a class folder without images is still named as such
    with pytest.raises(DataError, match="class folder .* has no images"):
        list_images_for_prediction(tmp_path)
