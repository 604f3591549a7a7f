-- A few rows for the sample Baitoru schema (testdata/schema/baitoru.sql).
-- Explicit ids keep the demo's output predictable; the sequences are moved
-- past them at the end so later inserts do not collide.

INSERT INTO companies (company_id, name, name_kana, prefecture, city, phone, website, created_at) VALUES
    (1, '株式会社さくらフーズ',   'サクラフーズ',   '東京都',   '新宿区', '03-0000-0001', 'https://sakura-foods.example.jp', '2026-11-01 09:00:00+09'),
    (2, 'みなと物流株式会社',     'ミナトブツリュウ', '神奈川県', '横浜市', '045-000-0002', NULL,                              '2026-11-02 10:30:00+09'),
    (3, 'ひかりカフェ',           'ヒカリカフェ',   '大阪府',   '大阪市', NULL,           'https://hikari-cafe.example.jp', '2026-11-03 11:15:00+09');

INSERT INTO job_postings (posting_id, company_id, title, description, employment_type, wage, wage_unit,
                          conditions, tags, location, published, opens_on, created_at, updated_at) VALUES
    (101, 1, 'キッチンスタッフ（週2日〜OK）', '仕込みと調理補助をお願いします。未経験歓迎。', 'part_time', 1250.00, 'hour',
        '{"min_days_per_week": 2, "shifts": ["morning", "evening"], "meals": true}', '{未経験歓迎,まかない付き,駅チカ}',
        '東京都新宿区西新宿', true, '2026-12-01', '2026-11-10 09:00:00+09', '2026-11-10 09:00:00+09'),
    (102, 2, '倉庫内ピッキング', '軽作業中心。空調完備の倉庫です。', 'part_time', 1300.00, 'hour',
        '{"min_days_per_week": 3, "shifts": ["night"], "transport_paid": true}', '{夜勤,交通費支給}',
        '神奈川県横浜市鶴見区', true, '2026-12-05', '2026-11-11 13:00:00+09', '2026-11-11 13:00:00+09'),
    (103, 3, 'ホールスタッフ', 'カフェでの接客。', 'part_time', 1150.00, 'hour',
        '{}', '{}', '大阪府大阪市北区', false, NULL, '2026-11-12 08:45:00+09', '2026-11-12 08:45:00+09');

INSERT INTO applications (application_id, company_id, posting_id, applicant_name, applicant_email, applicant_phone,
                          answers, status, source, applied_at, updated_at) VALUES
    (1001, 1, 101, '山田 太郎', 'taro.yamada@example.com', '090-0000-0001',
        '{"available_from": "2026-12-01", "days": ["mon", "thu"]}', 'applied',   'web', '2026-11-20 19:04:11+09', '2026-11-20 19:04:11+09'),
    (1002, 2, 102, '佐藤 花子', 'hanako.sato@example.com', NULL,
        '{"available_from": "2026-12-10", "night_ok": true}',     'screening', 'app', '2026-11-21 08:12:45+09', '2026-11-22 10:00:00+09');

SELECT setval(pg_get_serial_sequence('companies', 'company_id'), (SELECT max(company_id) FROM companies));
SELECT setval(pg_get_serial_sequence('job_postings', 'posting_id'), (SELECT max(posting_id) FROM job_postings));
SELECT setval(pg_get_serial_sequence('applications', 'application_id'), (SELECT max(application_id) FROM applications));
