-- notify: the default templates, loaded as version 1 of each template by
-- CREATE EXTENSION.  Generated from templates/ by
-- scripts/templates-to-sql.sh --extension templates; do not edit.

-- en/billing.payment_failed
SELECT notify_template_put(
	template_key => 'billing.payment_failed',
	locale => 'en',
	subject => $notify$Action needed: your {{{product_name}}} payment didn't go through$notify$,
	text_body => $notify${{#customer_name}}Hi {{{customer_name}}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}

We couldn't collect the payment of {{{amount}}} for invoice {{{invoice_number}}}{{#card_last4}} from the card ending in {{{card_last4}}}{{/card_last4}}.

We'll try again on {{{retry_date}}}. To keep your {{{product_name}}} subscription active, please check or update your payment method before then:

{{{billing_url}}}

You'll be asked to sign in. We never ask for card details by email.

If you've already updated your payment method, you can ignore this email.

The {{{product_name}}} team
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Your payment didn't go through</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}Hi {{customer_name}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}</p>
<p style="margin:0 0 16px;">We couldn't collect the payment of <strong>{{amount}}</strong> for invoice {{invoice_number}}{{#card_last4}} from the card ending in {{card_last4}}{{/card_last4}}.</p>
<p style="margin:0 0 16px;">We'll try again on {{retry_date}}. To keep your {{product_name}} subscription active, please check or update your payment method before then.</p>
<p style="margin:24px 0;"><a href="{{billing_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">Update payment method</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">You'll be asked to sign in. We never ask for card details by email. If you've already updated your payment method, you can ignore this email.</p>
<p style="margin:24px 0 0;">The {{product_name}} team</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "billing"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "A renewal or invoice charge was declined; no card data beyond the last four digits.",
  "type": "object",
  "required": ["product_name", "amount", "invoice_number", "retry_date", "billing_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "amount": {"type": "string", "description": "Amount with currency, already formatted (\"€49.00\", \"¥5,500\")."},
    "invoice_number": {"type": "string", "description": "Invoice number."},
    "card_last4": {"type": "string", "description": "Last four digits of the card charged, if a card."},
    "retry_date": {"type": "string", "description": "Date of the next automatic attempt, already formatted."},
    "billing_url": {"type": "string", "description": "Link to the billing page (sign-in required; no token in it)."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/notify.message
SELECT notify_template_put(
	template_key => 'notify.message',
	locale => 'en',
	subject => $notify${{{subject}}}$notify$,
	text_body => $notify${{{text}}}$notify$,
	html_body => $notify${{{html}}}$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "A message written by the caller: subject and bodies come in the payload. For one-off mail and for tests; prefer a real template per event.",
  "type": "object",
  "required": ["subject", "text"],
  "properties": {
    "subject": {"type": "string", "description": "Subject line."},
    "text": {"type": "string", "description": "text/plain body."},
    "html": {"type": "string", "description": "text/html body, sent as given (not escaped)."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/subscription.canceled
SELECT notify_template_put(
	template_key => 'subscription.canceled',
	locale => 'en',
	subject => $notify$Your {{{product_name}}} subscription has been canceled$notify$,
	text_body => $notify${{#customer_name}}Hi {{{customer_name}}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}

This confirms that your {{{plan_name}}} plan has been canceled. You won't be charged again, and you can keep using {{{product_name}}} until {{{access_until}}}.
{{#reactivate_url}}

Changed your mind? You can resume your subscription any time before then:
{{{reactivate_url}}}
{{/reactivate_url}}

Thank you for using {{{product_name}}}.

The {{{product_name}}} team
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Your subscription has been canceled</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}Hi {{customer_name}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}</p>
<p style="margin:0 0 16px;">This confirms that your {{plan_name}} plan has been canceled. You won't be charged again, and you can keep using {{product_name}} until <strong>{{access_until}}</strong>.</p>
{{#reactivate_url}}
<p style="margin:0 0 16px;">Changed your mind? You can resume your subscription any time before then.</p>
<p style="margin:24px 0;"><a href="{{reactivate_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">Resume subscription</a></p>
{{/reactivate_url}}
<p style="margin:0 0 16px;">Thank you for using {{product_name}}.</p>
<p style="margin:24px 0 0;">The {{product_name}} team</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Confirms a cancellation and says until when the service stays available.",
  "type": "object",
  "required": ["product_name", "plan_name", "access_until"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "plan_name": {"type": "string", "description": "Name of the plan canceled."},
    "access_until": {"type": "string", "description": "Last day of access, already formatted."},
    "reactivate_url": {"type": "string", "description": "Link to resume the subscription (sign-in required); omit to leave the paragraph out."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/ticket.created
SELECT notify_template_put(
	template_key => 'ticket.created',
	locale => 'en',
	subject => $notify$[#{{{ticket_id}}}] We received your request: {{{ticket_subject}}}$notify$,
	text_body => $notify${{#customer_name}}Hi {{{customer_name}}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}

Thanks for contacting {{{product_name}}} support. We've received your request and opened ticket #{{{ticket_id}}}:

    {{{ticket_subject}}}

{{#response_time}}We usually reply {{{response_time}}}. {{/response_time}}To add details or attachments, reply to this email. You can also follow the ticket here:

{{{ticket_url}}}

{{{product_name}}} Support
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Request #{{ticket_id}} received</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}Hi {{customer_name}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}</p>
<p style="margin:0 0 16px;">Thanks for contacting {{product_name}} support. We've received your request and opened ticket #{{ticket_id}}:</p>
<p style="margin:0 0 16px;padding:12px 16px;background:#f4f5f7;border-radius:4px;font-weight:bold;">{{ticket_subject}}</p>
<p style="margin:0 0 16px;">{{#response_time}}We usually reply {{response_time}}. {{/response_time}}To add details or attachments, reply to this email.</p>
<p style="margin:24px 0;"><a href="{{ticket_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">View your request</a></p>
<p style="margin:24px 0 0;">{{product_name}} Support</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Acknowledges a new support request.",
  "type": "object",
  "required": ["product_name", "ticket_id", "ticket_subject", "ticket_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "ticket_id": {"type": "integer", "description": "Ticket number."},
    "ticket_subject": {"type": "string", "description": "Subject the customer gave the request."},
    "ticket_url": {"type": "string", "description": "Link to the ticket in the help center (sign-in required)."},
    "response_time": {"type": "string", "description": "Expected first response, already localized (\"within one business day\", \"1営業日以内\")."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/ticket.replied
SELECT notify_template_put(
	template_key => 'ticket.replied',
	locale => 'en',
	subject => $notify$Re: [#{{{ticket_id}}}] {{{ticket_subject}}}$notify$,
	text_body => $notify${{#customer_name}}Hi {{{customer_name}}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}

{{{agent_name}}} replied to your request #{{{ticket_id}}}:

{{{reply_body}}}

To answer, reply to this email or open the ticket:
{{{ticket_url}}}

{{{product_name}}} Support
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>New reply to request #{{ticket_id}}</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}Hi {{customer_name}},{{/customer_name}}{{^customer_name}}Hi,{{/customer_name}}</p>
<p style="margin:0 0 16px;">{{agent_name}} replied to your request #{{ticket_id}} &ldquo;{{ticket_subject}}&rdquo;:</p>
<div style="margin:0 0 16px;padding:12px 16px;border-left:3px solid #2563eb;background:#f4f5f7;white-space:pre-wrap;">{{reply_body}}</div>
<p style="margin:0 0 16px;">To answer, reply to this email or open the ticket.</p>
<p style="margin:24px 0;"><a href="{{ticket_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">View the conversation</a></p>
<p style="margin:24px 0 0;">{{product_name}} Support</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Tells the customer that an agent answered their ticket.",
  "type": "object",
  "required": ["product_name", "ticket_id", "ticket_subject", "agent_name", "reply_body", "ticket_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "ticket_id": {"type": "integer", "description": "Ticket number."},
    "ticket_subject": {"type": "string", "description": "Subject of the ticket."},
    "agent_name": {"type": "string", "description": "Name of the agent who replied."},
    "reply_body": {"type": "string", "description": "The reply as plain text; line breaks are kept, HTML is escaped."},
    "ticket_url": {"type": "string", "description": "Link to the ticket in the help center (sign-in required)."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/user.email_verification
SELECT notify_template_put(
	template_key => 'user.email_verification',
	locale => 'en',
	subject => $notify$Confirm your email address for {{{product_name}}}$notify$,
	text_body => $notify${{#user_name}}Hi {{{user_name}}},{{/user_name}}{{^user_name}}Hi,{{/user_name}}

Please confirm the email address of your {{{product_name}}} account by opening this link:

{{{verify_url}}}

The link works once and expires in {{{expires_in_minutes}}} minutes. If it has expired, you can ask for a new one when you sign in.

If you didn't sign up for {{{product_name}}}, ignore this email and no account will be activated.

The {{{product_name}}} team
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Confirm your email address</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#user_name}}Hi {{user_name}},{{/user_name}}{{^user_name}}Hi,{{/user_name}}</p>
<p style="margin:0 0 16px;">Please confirm the email address of your {{product_name}} account.</p>
<p style="margin:24px 0;"><a href="{{verify_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">Confirm email address</a></p>
<p style="margin:0 0 16px;">The link works once and expires in {{expires_in_minutes}} minutes. If it has expired, you can ask for a new one when you sign in.</p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">If the button doesn't work, copy this link into your browser:<br><a href="{{verify_url}}" style="color:#2563eb;word-break:break-all;">{{verify_url}}</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">If you didn't sign up for {{product_name}}, ignore this email and no account will be activated.</p>
<p style="margin:24px 0 0;">The {{product_name}} team</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "security"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Sent after sign-up or an email change; verify_url carries a single-use token.",
  "type": "object",
  "required": ["product_name", "verify_url", "expires_in_minutes"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the user."},
    "user_name": {"type": "string", "description": "Display name; omit to greet without a name."},
    "verify_url": {"type": "string", "description": "Verification link with a single-use, short-lived token."},
    "expires_in_minutes": {"type": "integer", "description": "Minutes until the link expires."}
  }
}
$notify$)::jsonb,
	activate => true);

-- en/user.password_reset
SELECT notify_template_put(
	template_key => 'user.password_reset',
	locale => 'en',
	subject => $notify$Reset your {{{product_name}}} password$notify$,
	text_body => $notify${{#user_name}}Hi {{{user_name}}},{{/user_name}}{{^user_name}}Hi,{{/user_name}}

We received a request to reset the password of your {{{product_name}}} account{{#request_ip}} from IP address {{{request_ip}}}{{/request_ip}}. To choose a new password, open this link:

{{{reset_url}}}

The link works once and expires in {{{expires_in_minutes}}} minutes. Please don't forward this email: until the link expires, anyone who has it can set your password.

If you didn't ask for this, ignore this email. Your password stays the same.

The {{{product_name}}} team
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Reset your password</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:1.6;color:#1f2933;">
<p style="margin:0 0 16px;">{{#user_name}}Hi {{user_name}},{{/user_name}}{{^user_name}}Hi,{{/user_name}}</p>
<p style="margin:0 0 16px;">We received a request to reset the password of your {{product_name}} account{{#request_ip}} from IP address {{request_ip}}{{/request_ip}}.</p>
<p style="margin:24px 0;"><a href="{{reset_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">Choose a new password</a></p>
<p style="margin:0 0 16px;">The link works once and expires in {{expires_in_minutes}} minutes. Please don't forward this email: until the link expires, anyone who has it can set your password.</p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">If the button doesn't work, copy this link into your browser:<br><a href="{{reset_url}}" style="color:#2563eb;word-break:break-all;">{{reset_url}}</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">If you didn't ask for this, ignore this email. Your password stays the same.</p>
<p style="margin:24px 0 0;">The {{product_name}} team</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "security"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Sent when someone asks to reset a password; reset_url carries a single-use token.",
  "type": "object",
  "required": ["product_name", "reset_url", "expires_in_minutes"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the user."},
    "user_name": {"type": "string", "description": "Display name; omit to greet without a name."},
    "reset_url": {"type": "string", "description": "Password reset link with a single-use, short-lived token."},
    "expires_in_minutes": {"type": "integer", "description": "Minutes until the link expires."},
    "request_ip": {"type": "string", "description": "IP address the request came from, if known."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/billing.payment_failed
SELECT notify_template_put(
	template_key => 'billing.payment_failed',
	locale => 'ja',
	subject => $notify$【{{{product_name}}}】お支払いを完了できませんでした$notify$,
	text_body => $notify${{#customer_name}}{{{customer_name}}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}

いつも{{{product_name}}}をご利用いただき、ありがとうございます。
請求書 {{{invoice_number}}}（{{{amount}}}）のお支払い{{#card_last4}}（末尾 {{{card_last4}}} のカード）{{/card_last4}}を完了できませんでした。

{{{retry_date}}}に自動で再度決済を行います。サービスを引き続きご利用いただくため、それまでにお支払い方法をご確認のうえ、更新をお願いいたします。

{{{billing_url}}}

ページを開く際にサインインが必要です。当社がメールでカード情報をお尋ねすることはありません。

すでにお支払い方法を更新された場合は、このメールは破棄してください。

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>お支払いを完了できませんでした</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}{{customer_name}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}</p>
<p style="margin:0 0 16px;">いつも{{product_name}}をご利用いただき、ありがとうございます。<br>請求書 {{invoice_number}}（<strong>{{amount}}</strong>）のお支払い{{#card_last4}}（末尾 {{card_last4}} のカード）{{/card_last4}}を完了できませんでした。</p>
<p style="margin:0 0 16px;">{{retry_date}}に自動で再度決済を行います。サービスを引き続きご利用いただくため、それまでにお支払い方法をご確認のうえ、更新をお願いいたします。</p>
<p style="margin:24px 0;"><a href="{{billing_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">お支払い方法を更新する</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">ページを開く際にサインインが必要です。当社がメールでカード情報をお尋ねすることはありません。すでにお支払い方法を更新された場合は、このメールは破棄してください。</p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "billing"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "A renewal or invoice charge was declined; no card data beyond the last four digits.",
  "type": "object",
  "required": ["product_name", "amount", "invoice_number", "retry_date", "billing_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "amount": {"type": "string", "description": "Amount with currency, already formatted (\"€49.00\", \"¥5,500\")."},
    "invoice_number": {"type": "string", "description": "Invoice number."},
    "card_last4": {"type": "string", "description": "Last four digits of the card charged, if a card."},
    "retry_date": {"type": "string", "description": "Date of the next automatic attempt, already formatted."},
    "billing_url": {"type": "string", "description": "Link to the billing page (sign-in required; no token in it)."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/subscription.canceled
SELECT notify_template_put(
	template_key => 'subscription.canceled',
	locale => 'ja',
	subject => $notify$【{{{product_name}}}】ご契約の解約手続きが完了しました$notify$,
	text_body => $notify${{#customer_name}}{{{customer_name}}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}

{{{plan_name}}}プランの解約手続きが完了しました。今後、料金が請求されることはありません。{{{access_until}}}までは、引き続き{{{product_name}}}をご利用いただけます。
{{#reactivate_url}}

期間内であれば、下記のページからいつでも契約を再開できます。
{{{reactivate_url}}}
{{/reactivate_url}}

これまで{{{product_name}}}をご利用いただき、誠にありがとうございました。

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>解約手続き完了のお知らせ</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}{{customer_name}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}</p>
<p style="margin:0 0 16px;">{{plan_name}}プランの解約手続きが完了しました。今後、料金が請求されることはありません。<strong>{{access_until}}</strong>までは、引き続き{{product_name}}をご利用いただけます。</p>
{{#reactivate_url}}
<p style="margin:0 0 16px;">期間内であれば、下記のボタンからいつでも契約を再開できます。</p>
<p style="margin:24px 0;"><a href="{{reactivate_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">契約を再開する</a></p>
{{/reactivate_url}}
<p style="margin:0 0 16px;">これまで{{product_name}}をご利用いただき、誠にありがとうございました。</p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Confirms a cancellation and says until when the service stays available.",
  "type": "object",
  "required": ["product_name", "plan_name", "access_until"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "plan_name": {"type": "string", "description": "Name of the plan canceled."},
    "access_until": {"type": "string", "description": "Last day of access, already formatted."},
    "reactivate_url": {"type": "string", "description": "Link to resume the subscription (sign-in required); omit to leave the paragraph out."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/ticket.created
SELECT notify_template_put(
	template_key => 'ticket.created',
	locale => 'ja',
	subject => $notify$【#{{{ticket_id}}}】お問い合わせを受け付けました：{{{ticket_subject}}}$notify$,
	text_body => $notify${{#customer_name}}{{{customer_name}}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}

{{{product_name}}}サポートにお問い合わせいただき、ありがとうございます。
以下の内容でお問い合わせを受け付けました（受付番号：#{{{ticket_id}}}）。

件名：{{{ticket_subject}}}

{{#response_time}}通常、{{{response_time}}}に回答いたします。{{/response_time}}補足やファイルの追加は、このメールにご返信ください。対応状況は下記のページからもご確認いただけます。

{{{ticket_url}}}

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>お問い合わせ #{{ticket_id}} を受け付けました</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}{{customer_name}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}</p>
<p style="margin:0 0 16px;">{{product_name}}サポートにお問い合わせいただき、ありがとうございます。<br>以下の内容でお問い合わせを受け付けました（受付番号：#{{ticket_id}}）。</p>
<p style="margin:0 0 16px;padding:12px 16px;background:#f4f5f7;border-radius:4px;font-weight:bold;">{{ticket_subject}}</p>
<p style="margin:0 0 16px;">{{#response_time}}通常、{{response_time}}に回答いたします。{{/response_time}}補足やファイルの追加は、このメールにご返信ください。</p>
<p style="margin:24px 0;"><a href="{{ticket_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">お問い合わせを確認する</a></p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Acknowledges a new support request.",
  "type": "object",
  "required": ["product_name", "ticket_id", "ticket_subject", "ticket_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "ticket_id": {"type": "integer", "description": "Ticket number."},
    "ticket_subject": {"type": "string", "description": "Subject the customer gave the request."},
    "ticket_url": {"type": "string", "description": "Link to the ticket in the help center (sign-in required)."},
    "response_time": {"type": "string", "description": "Expected first response, already localized (\"within one business day\", \"1営業日以内\")."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/ticket.replied
SELECT notify_template_put(
	template_key => 'ticket.replied',
	locale => 'ja',
	subject => $notify$Re: 【#{{{ticket_id}}}】{{{ticket_subject}}}$notify$,
	text_body => $notify${{#customer_name}}{{{customer_name}}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}

お問い合わせ（受付番号：#{{{ticket_id}}}）について、担当の{{{agent_name}}}から回答が届きました。

{{{reply_body}}}

ご返信は、このメールへの返信、または下記のページからお送りください。
{{{ticket_url}}}

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>お問い合わせ #{{ticket_id}} への回答</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#customer_name}}{{customer_name}} 様{{/customer_name}}{{^customer_name}}お客様{{/customer_name}}</p>
<p style="margin:0 0 16px;">お問い合わせ「{{ticket_subject}}」（受付番号：#{{ticket_id}}）について、担当の{{agent_name}}から回答が届きました。</p>
<div style="margin:0 0 16px;padding:12px 16px;border-left:3px solid #2563eb;background:#f4f5f7;white-space:pre-wrap;">{{reply_body}}</div>
<p style="margin:0 0 16px;">ご返信は、このメールへの返信、または下記のボタンからお送りください。</p>
<p style="margin:24px 0;"><a href="{{ticket_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">やり取りを確認する</a></p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "transactional"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Tells the customer that an agent answered their ticket.",
  "type": "object",
  "required": ["product_name", "ticket_id", "ticket_subject", "agent_name", "reply_body", "ticket_url"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the customer."},
    "customer_name": {"type": "string", "description": "Customer's display name; omit to greet without a name."},
    "ticket_id": {"type": "integer", "description": "Ticket number."},
    "ticket_subject": {"type": "string", "description": "Subject of the ticket."},
    "agent_name": {"type": "string", "description": "Name of the agent who replied."},
    "reply_body": {"type": "string", "description": "The reply as plain text; line breaks are kept, HTML is escaped."},
    "ticket_url": {"type": "string", "description": "Link to the ticket in the help center (sign-in required)."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/user.email_verification
SELECT notify_template_put(
	template_key => 'user.email_verification',
	locale => 'ja',
	subject => $notify$【{{{product_name}}}】メールアドレスの確認をお願いします$notify$,
	text_body => $notify${{#user_name}}{{{user_name}}} 様{{/user_name}}{{^user_name}}お客様{{/user_name}}

{{{product_name}}}にご登録いただき、ありがとうございます。
下記のリンクを開いて、メールアドレスの確認を完了してください。

{{{verify_url}}}

このリンクは一度だけ有効で、有効期限は{{{expires_in_minutes}}}分です。期限が切れた場合は、サインイン時に新しいリンクをお送りできます。

このメールにお心当たりのない場合は、お手数ですが破棄してください。アカウントが有効になることはありません。

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>メールアドレスの確認</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#user_name}}{{user_name}} 様{{/user_name}}{{^user_name}}お客様{{/user_name}}</p>
<p style="margin:0 0 16px;">{{product_name}}にご登録いただき、ありがとうございます。<br>下記のボタンから、メールアドレスの確認を完了してください。</p>
<p style="margin:24px 0;"><a href="{{verify_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">メールアドレスを確認する</a></p>
<p style="margin:0 0 16px;">このリンクは一度だけ有効で、有効期限は{{expires_in_minutes}}分です。期限が切れた場合は、サインイン時に新しいリンクをお送りできます。</p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">ボタンが動作しない場合は、次のURLをブラウザに貼り付けてください。<br><a href="{{verify_url}}" style="color:#2563eb;word-break:break-all;">{{verify_url}}</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">このメールにお心当たりのない場合は、お手数ですが破棄してください。アカウントが有効になることはありません。</p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "security"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Sent after sign-up or an email change; verify_url carries a single-use token.",
  "type": "object",
  "required": ["product_name", "verify_url", "expires_in_minutes"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the user."},
    "user_name": {"type": "string", "description": "Display name; omit to greet without a name."},
    "verify_url": {"type": "string", "description": "Verification link with a single-use, short-lived token."},
    "expires_in_minutes": {"type": "integer", "description": "Minutes until the link expires."}
  }
}
$notify$)::jsonb,
	activate => true);

-- ja/user.password_reset
SELECT notify_template_put(
	template_key => 'user.password_reset',
	locale => 'ja',
	subject => $notify$【{{{product_name}}}】パスワード再設定のご案内$notify$,
	text_body => $notify${{#user_name}}{{{user_name}}} 様{{/user_name}}{{^user_name}}お客様{{/user_name}}

{{{product_name}}}アカウントのパスワード再設定のご依頼を受け付けました{{#request_ip}}（IPアドレス：{{{request_ip}}}）{{/request_ip}}。
下記のリンクから、新しいパスワードを設定してください。

{{{reset_url}}}

このリンクは一度だけ有効で、有効期限は{{{expires_in_minutes}}}分です。期限内であればリンクを知っている人は誰でもパスワードを設定できるため、このメールは転送しないでください。

お心当たりのない場合は、このメールを破棄してください。パスワードは変更されません。

{{{product_name}}} サポートチーム
$notify$,
	html_body => $notify$<!DOCTYPE html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>パスワード再設定のご案内</title></head>
<body style="margin:0;padding:24px 12px;background:#f4f5f7;">
<div style="max-width:560px;margin:0 auto;padding:32px;background:#ffffff;border-radius:6px;font-family:'Hiragino Sans','Hiragino Kaku Gothic ProN',Meiryo,sans-serif;font-size:15px;line-height:1.8;color:#1f2933;">
<p style="margin:0 0 16px;">{{#user_name}}{{user_name}} 様{{/user_name}}{{^user_name}}お客様{{/user_name}}</p>
<p style="margin:0 0 16px;">{{product_name}}アカウントのパスワード再設定のご依頼を受け付けました{{#request_ip}}（IPアドレス：{{request_ip}}）{{/request_ip}}。<br>下記のボタンから、新しいパスワードを設定してください。</p>
<p style="margin:24px 0;"><a href="{{reset_url}}" style="display:inline-block;padding:12px 20px;background:#2563eb;border-radius:4px;color:#ffffff;font-weight:bold;text-decoration:none;">パスワードを再設定する</a></p>
<p style="margin:0 0 16px;">このリンクは一度だけ有効で、有効期限は{{expires_in_minutes}}分です。期限内であればリンクを知っている人は誰でもパスワードを設定できるため、このメールは転送しないでください。</p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">ボタンが動作しない場合は、次のURLをブラウザに貼り付けてください。<br><a href="{{reset_url}}" style="color:#2563eb;word-break:break-all;">{{reset_url}}</a></p>
<p style="margin:0 0 16px;font-size:13px;color:#52606d;">お心当たりのない場合は、このメールを破棄してください。パスワードは変更されません。</p>
<p style="margin:24px 0 0;">{{product_name}} サポートチーム</p>
</div>
</body>
</html>
$notify$,
	category => coalesce(($notify${"category": "security"}
$notify$)::jsonb ->> 'category', 'transactional'),
	schema => ($notify${
  "$comment": "Sent when someone asks to reset a password; reset_url carries a single-use token.",
  "type": "object",
  "required": ["product_name", "reset_url", "expires_in_minutes"],
  "properties": {
    "product_name": {"type": "string", "description": "Product or brand name shown to the user."},
    "user_name": {"type": "string", "description": "Display name; omit to greet without a name."},
    "reset_url": {"type": "string", "description": "Password reset link with a single-use, short-lived token."},
    "expires_in_minutes": {"type": "integer", "description": "Minutes until the link expires."},
    "request_ip": {"type": "string", "description": "IP address the request came from, if known."}
  }
}
$notify$)::jsonb,
	activate => true);

