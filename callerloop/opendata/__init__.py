"""Open data: survey results aggregated, small groups suppressed, packaged for portals.

gather        the database -> additive tallies per cell (month x priority x call-type
              group x language) of one agency
tables        tallies -> the published rows (cells and their totals), suppressed
suppression   which rows to blank so that no group of fewer than k answers is
              published or can be recovered by subtracting from published totals
package       rows -> CSV files, a Frictionless data package and a DCAT-US catalog
"""
