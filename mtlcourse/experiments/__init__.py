"""The experiments of chapters whose full run does not fit a chapter's CPU budget.

Each module here runs one chapter's experiment from the command line and stores the result with its
provenance (:mod:`mtlcourse.stored`); the chapter loads it, shows where it came from, and re-runs a few of
its runs live as a check. The same functions train the chapter's live runs, so stored and live numbers come
from one piece of code.
"""
