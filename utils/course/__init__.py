"""The course's own tooling, not lessons: each module is a ``make`` target (`make verify`, `bench`, `book`,
`questions`, `exercises`, `doctor`, `lock`, `offline-bundle`), run as ``python -m utils.course.<module>``. No chapter
imports from here; the self-check the chapters call is `utils.exercises.check`."""
