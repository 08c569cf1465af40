# ruff: noqa: RUF001  -- real text: typographic quotes, dashes and full-width commas are the point
"""Real message text, as marketers and transactional systems write it: the corpus rendering tests use.

Each entry is (template, what a contact named Ann with plan "gold" receives). Literal text must arrive
byte for byte; `{{"{{"}}` and `{{"}}"}}` are how a template writes literal double braces.
"""

ANN = {"first_name": "Ann", "last_name": "O'Neil", "phone_number": "+447400123101", "custom_fields": {"plan": "gold"}}

MESSAGES: list[tuple[str, str]] = [
    ("Hi {{first_name}}, 20% off today", "Hi Ann, 20% off today"),
    ("Flash sale: 50%% off everything! Use code SAVE50", "Flash sale: 50%% off everything! Use code SAVE50"),
    ("Hello %(name)s, your code is %s and %d%%", "Hello %(name)s, your code is %s and %d%%"),
    ("{{first_name}}: your order #48213 ($129.99) has shipped.", "Ann: your order #48213 ($129.99) has shipped."),
    (
        "Track it: https://shop.example.com/t?id=48213&utm_source=sms&utm_campaign=spring%20sale",
        "Track it: https://shop.example.com/t?id=48213&utm_source=sms&utm_campaign=spring%20sale",
    ),
    ("Your verification code is 493 021. Don't share it.", "Your verification code is 493 021. Don't share it."),
    ('He said "see you at 5" \\o/ C:\\Users\\ann', 'He said "see you at 5" \\o/ C:\\Users\\ann'),
    ("Regex fans: replace $1 with \\1 and {} with {0}", "Regex fans: replace $1 with \\1 and {} with {0}"),
    (
        "🎉 {{first_name|friend}}, your {{custom_fields.plan}} plan renews 🔁 soon 💳",
        "🎉 Ann, your gold plan renews 🔁 soon 💳",
    ),
    ("مرحبا {{first_name}}، خصم 20٪ على كل شيء", "مرحبا Ann، خصم 20٪ على كل شيء"),
    ("שלום {{first_name}}! 30% הנחה עד יום ראשון", "שלום Ann! 30% הנחה עד יום ראשון"),
    ("您好{{first_name}}，您的验证码是 8812，5分钟内有效。", "您好Ann，您的验证码是 8812，5分钟内有效。"),
    ("Line one\nLine two\r\n\tindented; end", "Line one\nLine two\r\n\tindented; end"),
    ('Mustache fans write {{"{{"}}name{{"}}"}} literally', "Mustache fans write {{name}} literally"),
    ('Single { braces } stay; so do {{"}}"}} and {{ "{{" }}', "Single { braces } stay; so do }} and {{"),
    ("'; DROP TABLE contacts; -- {{last_name}}", "'; DROP TABLE contacts; -- O'Neil"),
    ("E'\\x00' and $$dollar$$ quoting and %(user)s", "E'\\x00' and $$dollar$$ quoting and %(user)s"),
    ("Prices: £5, €7.50, ¥800, ₹99 — ends 31/12 @ 23:59", "Prices: £5, €7.50, ¥800, ₹99 — ends 31/12 @ 23:59"),
    ("Reply STOP to opt out. Msg&data rates may apply.", "Reply STOP to opt out. Msg&data rates may apply."),
    ("{{custom_fields.missing|100% free}} trial for {{first_name|you}}", "100% free trial for Ann"),
    ("Naïve café – “smart quotes” and ‘these’ … ok?", "Naïve café – “smart quotes” and ‘these’ … ok?"),
    ("Zero-width\u200bjoiner and\u00a0no-break space", "Zero-width\u200bjoiner and\u00a0no-break space"),
    ("%", "%"),
    ("%%%", "%%%"),
]
