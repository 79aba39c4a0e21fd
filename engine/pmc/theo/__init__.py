"""Theoretical P&L sets: the model, its CSV files read and written, generation.

``model`` holds ``TheoSet`` and the instrument match keys, ``read`` parses the five CSV files
(``columns`` reads their cells), ``write`` renders a set back to them and ``generate`` prices a
market snapshot into a set.
"""
