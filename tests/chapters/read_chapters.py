#!/usr/bin/env python3
"""The chapters of an audio file as mutagen reads them (a tag library
nobody here wrote, the one many taggers and players use), for
tests/chapters.rs: `read_chapters.py FILE` prints a JSON list of
{"start": s, "end": s or null, "title": ...} and the audio's length.

MP3: ID3v2 CHAP frames (each with its TIT2), in the order of the CTOC.
M4A: the Nero `chpl` (mutagen's MP4 chapters). FLAC and Opus: the Vorbis
comments CHAPTERnnn (HH:MM:SS.mmm) and CHAPTERnnnNAME.
"""

import json
import re
import sys

import mutagen
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus


def vorbis(tags):
    found = {}
    for key, values in tags.items():
        m = re.fullmatch(r"CHAPTER(\d{3})(NAME)?", key.upper())
        if m:
            found.setdefault(m.group(1), {})["name" if m.group(2) else "time"] = values[0]
    chapters = []
    for number in sorted(found):
        h, mi, s = found[number]["time"].split(":")
        start = int(h) * 3600 + int(mi) * 60 + float(s)
        chapters.append({"start": start, "end": None, "title": found[number].get("name", "")})
    return chapters


def main():
    path = sys.argv[1]
    kind = mutagen.File(path)
    if isinstance(kind, MP3):
        tags = ID3(path)
        toc = tags.getall("CTOC")
        order = list(toc[0].child_element_ids) if toc else None
        frames = {f.element_id: f for f in tags.getall("CHAP")}
        ids = order if order is not None else list(frames)
        chapters = []
        for element in ids:
            frame = frames[element]
            titles = [sub.text[0] for sub in frame.sub_frames.values() if sub.FrameID == "TIT2"]
            chapters.append(
                {
                    "start": frame.start_time / 1000,
                    "end": frame.end_time / 1000,
                    "title": titles[0] if titles else "",
                }
            )
    elif isinstance(kind, MP4):
        chapters = [
            {"start": c.start, "end": None, "title": c.title} for c in (kind.chapters or [])
        ]
    elif isinstance(kind, (FLAC, OggOpus)):
        chapters = vorbis(kind.tags or {})
    else:
        sys.exit(f"read_chapters.py: not a format with chapters: {type(kind).__name__}")
    print(json.dumps({"length": kind.info.length, "chapters": chapters}))


if __name__ == "__main__":
    main()
