"""Source formats: streaming row sources, a reader registry, one reader per format, and the
one row -> record generator (:mod:`synpref.formats.reading`) every command reads through.

Importing this package registers every built-in format.
"""

from . import (  # noqa: F401  (imported to register the readers)
    arena,
    candidates,
    dahoas,
    helpsteer,
    hh_rlhf,
    judgebench,
    ppe,
    prompt_chosen_rejected,
    rewardbench,
    rewardbench2,
    rm_bench,
    rm_gallery,
    rmb,
    stack_exchange,
    ultrafeedback,
)
from .common import FormatError, reason_of
from .mapping import FieldMapping, MappedReader
from .reading import MAX_DEPTH, MAX_FIELD_CHARS, Rejection, RowCount, make_reader, read_file, reader_for, records_from_rows, row_problem
from .registry import READERS, Reader, UnknownFormatError, detect, get_reader, known_formats, register
from .sources import DATA_SUFFIXES, KeyedRow, SourceError, expand_sources, iter_jsonl, iter_rows, strip_data_suffix

__all__ = [
    "DATA_SUFFIXES",
    "FieldMapping",
    "FormatError",
    "KeyedRow",
    "MAX_DEPTH",
    "MAX_FIELD_CHARS",
    "MappedReader",
    "READERS",
    "Reader",
    "Rejection",
    "RowCount",
    "SourceError",
    "UnknownFormatError",
    "detect",
    "expand_sources",
    "get_reader",
    "iter_jsonl",
    "iter_rows",
    "known_formats",
    "make_reader",
    "read_file",
    "reader_for",
    "reason_of",
    "records_from_rows",
    "register",
    "row_problem",
    "strip_data_suffix",
]
