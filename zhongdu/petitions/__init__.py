"""1999 hotline and petition cases (陳情): import, hotspots, trends, emerging hot spots, Open311.

The plan asks for hotspot analysis of where and why citizens complain (貳、一(七)(八), 參、一(一)12,
肆、六(二)); this package holds the pure analyses and the import checks; SQL lives in
`zhongdu.storage._petitions`.
"""
