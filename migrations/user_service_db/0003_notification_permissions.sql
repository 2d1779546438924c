-- The notification service's admin routes: sending and broadcasting, and managing templates,
-- statistics and delivery histories. Administrators only.
INSERT INTO permissions (name) VALUES ('notification:send'), ('notification:manage')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.name IN ('notification:send', 'notification:manage')
WHERE r.name = 'admin'
ON CONFLICT DO NOTHING;
