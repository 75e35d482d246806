from __future__ import annotations

import pytest

from guichet.routing.textprep import MAX_MODEL_CHARS, detect_language, expand_sms, fold, prepare


def test_folding_makes_accents_and_capitals_one_feature() -> None:
    assert fold("LYCÉE Œuvre Élève") == "lycee oeuvre eleve"
    assert prepare("", "LYCÉE").folded_text == prepare("", "lycee").folded_text


def test_sms_style_is_expanded_but_words_are_left_alone() -> None:
    text = prepare(
        "", "slt c pr savoir si ya un pb avec la cantine qd on a 3 enfants svp"
    ).model_text
    assert "salut" not in text  # a greeting at the start is dropped
    assert "c'est pour savoir" in text
    assert "il y a un problème" in text
    assert "quand" in text and "s'il vous plaît" in text
    # Real French words that look like abbreviations stay as written.
    assert expand_sms("un peu tel quel ou pas") == "un peu tel quel ou pas"
    assert expand_sms("bâtiment C") == "bâtiment C"


def test_shouting_is_lowered() -> None:
    text = prepare(
        "TOURISME", "MERCI DE M'ENVOYER LE GUIDE DES VACANCES EN SAVOIE PAR LA POSTE"
    ).model_text
    assert "guide des vacances" in text
    assert not text.isupper()


def test_quoted_reply_signature_and_disclaimer_are_removed() -> None:
    body = (
        "Bonjour,\n\nLe car scolaire de ma fille n'est pas passé ce matin à l'arrêt de la mairie.\n\n"
        "Cordialement,\nJean Dupont\n06 12 34 56 78\n\n"
        "Le 3 mars 2025 à 10:02, Région <contact@region.fr> a écrit :\n> Votre demande a bien été reçue\n"
    )
    text = prepare("RE: TR: Car scolaire", body).model_text
    assert text.startswith("Car scolaire\n")
    assert "car scolaire de ma fille" in text
    assert "Jean Dupont" not in text and "Votre demande" not in text
    footer = "Merci de traiter ma demande de bourse rapidement.\nCe message et ses pièces jointes sont confidentiels et destinés au seul destinataire."
    assert "confidentiels" not in prepare("", footer).model_text


def test_ocr_hyphenation_and_symbol_runs_are_repaired() -> None:
    text = prepare("", "Demande de sub-\nvention pour notre asso ========== merci").model_text
    assert "subvention" in text
    assert "==" not in text


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Bonjour, je voudrais savoir comment inscrire mon fils au transport scolaire.", "fr"),
        ("Hello, we moved to Annecy and would like to know the price of the school canteen.", "en"),
        ("Buenos días, necesito información sobre el transporte escolar de mi hijo.", "es"),
        ("Buongiorno, vorrei sapere come iscrivere mio figlio alla mensa della scuola.", "it"),
        ("Guten Tag, ich habe eine Frage zu der Schule und dem Bus für meine Tochter.", "de"),
        ("Olá, o meu antigo patrão não me deu o documento e não recebo o subsídio.", "pt"),
        ("مرحبا، أريد معلومات عن النقل المدرسي لابني", "ar"),
        ("😀😀😀", "und"),
        ("", "und"),
    ],
)
def test_language_is_detected_without_a_model(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n\n  ",
        "😀🙏🔥" * 50,
        "\x00\x01\xff\ufffd" * 5000,
        "a" * 1_000_000,
        "Lycée " * 200_000,
        "\ud800 broken surrogate",
    ],
)
def test_any_input_gives_a_bounded_result(body: str) -> None:
    prepared = prepare("", body)
    assert len(prepared.model_text) <= MAX_MODEL_CHARS
    assert prepared.language


def test_long_input_is_cut_and_says_so() -> None:
    prepared = prepare("Objet", "mot " * 300_000)
    assert prepared.truncated
    assert len(prepared.model_text) == MAX_MODEL_CHARS
