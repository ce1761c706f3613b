# Operator texts of the reason codes (twproto.reasons) in English and French, for the bridge, the
# operator page and tools, and the host side of twproto.reasons. The station never imports this
# module (it sends codes only): twproto.reasons.message / hint / verdict_text / code_of /
# unpack_verdict / TABLE / __all__ load it on first use (reasons' module __getattr__).
from twproto import reasons as _R

VERDICT_TEXT = {
    "en": ("Accepted", "Accepted with warning", "Rejected"),
    "fr": ("Accepté", "Accepté avec avertissement", "Refusé"),
}

# Indexed by reason code (same order as reasons.RULE_IDS): EN message, FR message, EN hint, FR
# hint. Messages fit a small display (EN <= 40 characters, FR <= 48); hints are one sentence for
# the operator page.
TEXT = (
    (  # 0 NONE
        "Accepted",
        "Accepté",
        "Put the next bag on the scale.",
        "Posez le sac suivant sur la balance.",
    ),
    (  # 1 TAG-SYNTAX
        "Tag is not a valid ID",
        "Étiquette : identifiant invalide",
        "Scan again; if it fails, set the bag aside and call the supervisor.",
        "Scannez à nouveau ; en cas d'échec, mettez le sac de côté et appelez le superviseur.",
    ),
    (  # 2 TAG-CHECK
        "Tag check character wrong",
        "Caractère de contrôle faux",
        "Scan again; a damaged label must be replaced by the supervisor.",
        "Scannez à nouveau ; une étiquette abîmée doit être remplacée par le superviseur.",
    ),
    (  # 3 TAG-SITE
        "Tag not issued to this site",
        "Étiquette non attribuée à ce site",
        "Do not process this bag; report it to the supervisor.",
        "Ne traitez pas ce sac ; signalez-le au superviseur.",
    ),
    (  # 4 WEIGHT-RANGE
        "Weight outside allowed range",
        "Poids hors de la plage autorisée",
        "Check the bag and the scale, then weigh again.",
        "Vérifiez le sac et la balance, puis pesez à nouveau.",
    ),
    (  # 5 NOT-STABLE
        "Scale not stable",
        "Balance instable",
        "Wait until the bag is still, then weigh again.",
        "Attendez que le sac soit immobile, puis pesez à nouveau.",
    ),
    (  # 6 OUT-OF-RANGE
        "Scale overloaded or below zero",
        "Balance en surcharge ou sous zéro",
        "Remove the load, check the zero, then weigh again.",
        "Retirez la charge, vérifiez le zéro, puis pesez à nouveau.",
    ),
    (  # 7 DUPLICATE-STEP
        "Tag already weighed at this step",
        "Étiquette déjà pesée à cette étape",
        "Do not weigh a bag twice; call the supervisor if unsure.",
        "Ne pesez pas un sac deux fois ; en cas de doute, appelez le superviseur.",
    ),
    (  # 8 TIME-FUTURE
        "Station time is in the future",
        "Heure du poste dans le futur",
        "The station clock is ahead: ask a technician to set it.",
        "L'horloge du poste avance : faites-la régler par un technicien.",
    ),
    (  # 9 TIME-BEFORE-PROVISIONING
        "Time is before station setup",
        "Heure antérieure à l'installation",
        "The station clock is wrong: ask a technician to set it.",
        "L'horloge du poste est fausse : faites-la régler par un technicien.",
    ),
    (  # 10 TIME-NOT-SYNCED
        "Station clock not set",
        "Horloge du poste non réglée",
        "Connect the station to the depot computer to set the time.",
        "Connectez le poste à l'ordinateur du dépôt pour régler l'heure.",
    ),
    (  # 11 SEQ-GAP
        "Records missing in sequence",
        "Enregistrements manquants",
        "Keep the station connected so every record is sent; tell the supervisor.",
        "Gardez le poste connecté pour envoyer chaque enregistrement ; prévenez le superviseur.",
    ),
    (  # 12 OPERATOR
        "Operator not authorised",
        "Opérateur non autorisé",
        "Log in with your own operator badge.",
        "Connectez-vous avec votre propre badge d'opérateur.",
    ),
    (  # 13 MASS-BALANCE
        "Bag heavier than at earlier step",
        "Sac plus lourd qu'à l'étape précédente",
        "Set the bag aside and call the supervisor.",
        "Mettez le sac de côté et appelez le superviseur.",
    ),
    (  # 14 STEP-UNKNOWN
        "Step not allowed at this site",
        "Étape non autorisée sur ce site",
        "The station role is wrong: call a technician.",
        "Le rôle du poste est faux : appelez un technicien.",
    ),
    (  # 15 RULESET-MISMATCH
        "Rule set differs from station",
        "Règles différentes du poste",
        "Update the station's rule set.",
        "Mettez à jour les règles du poste.",
    ),
    (  # 16 TAG-STEP
        "Tag not valid at this step",
        "Étiquette non valable à cette étape",
        "Check that the bag is at the right station.",
        "Vérifiez que le sac est au bon poste.",
    ),
)


# The public numbers, served as twproto.reasons.X (tests/protocol/test_frame_split.py checks
# them against reasons.RULE_IDS / VERDICT_NAMES and reasons' private copies).
ACCEPT = 0
WARN = 1
REJECT = 2
NONE = 0
TAG_SYNTAX = 1
TAG_CHECK = 2
TAG_SITE = 3
WEIGHT_RANGE = 4
NOT_STABLE = 5
OUT_OF_RANGE = 6
DUPLICATE_STEP = 7
TIME_FUTURE = 8
TIME_BEFORE_PROVISIONING = 9
TIME_NOT_SYNCED = 10
SEQ_GAP = 11
OPERATOR = 12
MASS_BALANCE = 13
STEP_UNKNOWN = 14
RULESET_MISMATCH = 15
TAG_STEP = 16
MAX_CODE = 63

# The names twproto.reasons serves from here (all in __all__, which reasons checks).
HOST_NAMES = ("__all__", "TABLE", "message", "hint", "verdict_text", "code_of", "unpack_verdict",
              "ACCEPT", "WARN", "REJECT", "NONE", "MAX_CODE", "TAG_SYNTAX", "TAG_CHECK", "TAG_SITE",
              "WEIGHT_RANGE", "NOT_STABLE", "OUT_OF_RANGE", "DUPLICATE_STEP", "TIME_FUTURE",
              "TIME_BEFORE_PROVISIONING", "TIME_NOT_SYNCED", "SEQ_GAP", "OPERATOR", "MASS_BALANCE",
              "STEP_UNKNOWN", "RULESET_MISMATCH", "TAG_STEP")

__all__ = (
    "ACCEPT", "WARN", "REJECT", "TABLE", "MAX_CODE", "VERDICT_NAMES", "rule_id", "code_of",
    "message", "hint", "verdict_text", "pack_verdict", "unpack_verdict", "NONE", "TAG_SYNTAX",
    "TAG_CHECK", "TAG_SITE", "WEIGHT_RANGE", "NOT_STABLE", "OUT_OF_RANGE", "DUPLICATE_STEP",
    "TIME_FUTURE", "TIME_BEFORE_PROVISIONING", "TIME_NOT_SYNCED", "SEQ_GAP", "OPERATOR",
    "MASS_BALANCE", "STEP_UNKNOWN", "RULESET_MISMATCH", "TAG_STEP",
)  # twproto.reasons.__all__

# (code, rule ID, EN message, FR message, EN hint, FR hint) rows: twproto.reasons.TABLE.
TABLE = tuple((c, _R.RULE_IDS[c]) + TEXT[c] for c in range(len(_R.RULE_IDS)))

_LANG = {"en": 0, "fr": 1}


def _index(code):
    # equality, not isinstance: any value equal to a known code finds it
    for c in range(len(_R.RULE_IDS)):
        if c == code:
            return c
    return None


def code_of(rid):
    """Reason code for a rule ID string, or None."""
    for c in range(len(_R.RULE_IDS)):
        if _R.RULE_IDS[c] == rid:
            return c
    return None


def message(code, lang="en"):
    """Short operator message; unknown language falls back to English, unknown code to a generic
    text that still shows the number (a newer station may send a code this build lacks)."""
    k = _LANG.get(lang, 0)
    c = _index(code)
    if c is None:
        return ("Reason " if k == 0 else "Motif ") + str(code)
    return TEXT[c][k]


def hint(code, lang="en"):
    """What the operator should do, one sentence."""
    k = _LANG.get(lang, 0)
    c = _index(code)
    if c is None:
        return "Call the supervisor." if k == 0 else "Appelez le superviseur."
    return TEXT[c][k + 2]


def verdict_text(verdict, lang="en"):
    t = VERDICT_TEXT.get(lang, VERDICT_TEXT["en"])
    return t[verdict] if 0 <= verdict <= 2 else "?"


def unpack_verdict(b):
    """(verdict, reason) from a verdict byte; verdict 3 is reserved and returned as is."""
    return b & 3, (b >> 2) & 63
