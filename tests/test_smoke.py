async def test_db_engine_roundtrip(sessionmaker):
    from storage.models import School

    async with sessionmaker.begin() as s:
        s.add(School(slug="s1", name="School One"))
    async with sessionmaker() as s:
        school = (await s.execute(__import__("sqlalchemy").select(School))).scalar_one()
        assert school.slug == "s1"
        assert school.created_at.tzinfo is not None
