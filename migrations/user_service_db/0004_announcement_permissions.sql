-- The announcement service: faculty announce to the courses they teach (`announcement:create`),
-- administrators to anyone and manage every announcement (`announcement:manage`).
INSERT INTO permissions (name) VALUES ('announcement:create'), ('announcement:manage')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name IN ('announcement:create', 'announcement:manage')
WHERE r.name = 'admin'
ON CONFLICT DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name = 'announcement:create'
WHERE r.name = 'faculty'
ON CONFLICT DO NOTHING;
