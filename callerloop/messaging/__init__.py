"""Texts to and from residents: phone numbers, SMS encoding and keywords, message templates
and links, delivery receipts, the opt-out registry, inbound texts.
"""
